/**
 * The memory policy of backups, restores and the chunk worker pool, in one place: when a job's main thread collects
 * its heap, when malloc's free memory goes back to the kernel, and when the workers collect with it. Why each of these
 * is what it is: reclaim.ts (collections) and pool.ts (reused buffers). The pipeline's code calls `JobMemory`, never
 * the collector or the allocator itself.
 */
import { trimAllocator } from '../../common/native/index.js';
import { collectAll, MAIN_THREAD_RECLAIM, Reclaimer } from './reclaim.js';

export interface MemoryPolicy {
  /**
   * After a job's setup (the index loaded, the diff surveyed: megabytes of dead objects and freed temporaries in the
   * heap and malloc's arenas), one full collection and an allocator trim before its data buffers come, so they do not
   * add to the job's peak. Default true.
   */
  collectAfterSetup?: boolean;
  /**
   * Bytes a job's main thread processes between full collections (its buffers are reused, so what the collector
   * finds there is small objects). Default MAIN_THREAD_RECLAIM, 256 MiB; `Infinity` never collects.
   */
  collectEvery?: number;
  /** After each of those collections, malloc's free memory goes back to the kernel (process-wide). Default true. */
  trimAfterCollect?: boolean;
  /**
   * After each of those collections, every chunk worker runs a full collection too, so what a long job promoted into
   * a worker's old generation does not stay there. Default true.
   */
  workersCollectWithJob?: boolean;
  /**
   * When the worker pool has been idle long enough to drop its spare buffers (pool.ts IDLE_RELEASE_MS), a full
   * collection and an allocator trim hand their memory back. Default true.
   */
  trimWhenIdle?: boolean;
}

/** The policy every field of which is its default. */
export const DEFAULT_MEMORY_POLICY: Readonly<Required<MemoryPolicy>> = {
  collectAfterSetup: true,
  collectEvery: MAIN_THREAD_RECLAIM,
  trimAfterCollect: true,
  workersCollectWithJob: true,
  trimWhenIdle: true,
};

/** `policy` with its defaults filled in. */
export function resolveMemoryPolicy(policy: MemoryPolicy = {}): Required<MemoryPolicy> {
  return {
    collectAfterSetup: policy.collectAfterSetup ?? DEFAULT_MEMORY_POLICY.collectAfterSetup,
    collectEvery: policy.collectEvery ?? DEFAULT_MEMORY_POLICY.collectEvery,
    trimAfterCollect: policy.trimAfterCollect ?? DEFAULT_MEMORY_POLICY.trimAfterCollect,
    workersCollectWithJob: policy.workersCollectWithJob ?? DEFAULT_MEMORY_POLICY.workersCollectWithJob,
    trimWhenIdle: policy.trimWhenIdle ?? DEFAULT_MEMORY_POLICY.trimWhenIdle,
  };
}

/** The workers a job's collections reach (ChunkWorkers). */
export interface CollectingWorkers {
  /** Has every worker run a full collection. */
  collect(): void;
}

/** A full collection, then malloc's free memory handed back to the kernel. */
export function collectAndTrim(): void {
  collectAll();
  trimAllocator();
}

/** One job's memory policy in action: what the pipeline calls at its setup and for each byte it processes. */
export class JobMemory {
  private readonly policy: Required<MemoryPolicy>;
  private readonly reclaimer: Reclaimer | undefined;

  constructor(policy: MemoryPolicy | undefined, workers: CollectingWorkers) {
    this.policy = resolveMemoryPolicy(policy);
    const { collectEvery, trimAfterCollect, workersCollectWithJob } = this.policy;
    if (!Number.isFinite(collectEvery)) return;
    // Full collections only (majorEvery 1): forced young ones moved every batch in flight to the old generation.
    this.reclaimer = new Reclaimer(collectEvery, 1, undefined, () => {
      if (trimAfterCollect) trimAllocator();
      if (workersCollectWithJob) workers.collect();
    });
  }

  /** The job's setup is over: its garbage goes before the data buffers come (collectAfterSetup). */
  afterSetup(): void {
    if (this.policy.collectAfterSetup) collectAndTrim();
  }

  /** Notes `bytes` processed on the main thread, collecting when the policy says. */
  processed(bytes: number): void {
    this.reclaimer?.processed(bytes);
  }
}
