/**
 * Resync of volumes attached nowhere (docs/REPLICATION.md, R19). The resync manager works on the coordinating node,
 * and a volume nobody attached has none; without this its replicas would stay out of sync (and a dead node's
 * replica would never be replaced) until its next attach. So a node that holds an in-sync replica of such a volume
 * attaches it itself, for the resync only, once a replica that lags is due (its node is online, or it is past the
 * replacement timeout): the record's `attached` says `for: 'resync'`, and the manager then treats the volume as any
 * volume attached here. When no copy of it runs any more (done, or nothing could be done), the attach ends.
 *
 * It gives way to every other use. Another node's attach or operation finds the lock held with no client's attach in
 * the record (`attached.for`, or no `attached` yet), puts a request under YIELD_PREFIX (tenure.ts) and waits for the
 * attach lock: this node closes its attach (the copies stop where they are, as at any detach) on the request. An attach or operation on this node ends it first (engine.ts).
 * Several in-sync holders may try together; the attach lock lets one through, and the others find it attached.
 */
import { isFerryError } from '../../common/index.js';
import { NODES_PREFIX } from '../cluster/membership.js';
import type { ClusterStore } from '../cluster/types.js';
import { catalogKeys } from './catalog.js';
import type { ReplicaRecord, VolumeRecord } from './records.js';
import { YIELD_PREFIX } from './tenure.js';
import type { BlockDevice } from './types.js';

/** What the detached resyncs need from the resync manager and the engine. */
export interface DetachedResyncContext {
  store: ClusterStore;
  /** This node's id. */
  nodeId: string;
  /**
   * Attaches the volume of `record` (just read: attached nowhere, up) on this node for a resync (engine: the record's
   * `attached.for` is `resync`).
   */
  attach(record: VolumeRecord): Promise<BlockDevice>;
  /** Whether replica `r` has been out of sync past the replacement timeout. */
  expired(r: ReplicaRecord): boolean;
  /** Least time between two attaches of one volume for a resync, ms. */
  retryMs: number;
  now(): number;
  log(message: string): void;
}

/** An attach of this node's for a resync, and the pass of the manager that made it. */
interface Healing {
  device: BlockDevice;
  pass: number;
}

const inSync = (r: ReplicaRecord): boolean => (r.state ?? 'in-sync') === 'in-sync';

/** Whether `record` is a volume attached nowhere with a replica out of sync and one in sync on node `nodeId`. */
export function needsDetachedResync(record: VolumeRecord, nodeId: string): boolean {
  const replicas = record.replicas ?? [];
  return (
    record.attached === undefined &&
    record.status === 'up' &&
    replicas.some((r) => !inSync(r)) &&
    replicas.some((r) => r.node_id === nodeId && inSync(r))
  );
}

/** The volumes this node may resync while attached nowhere, and its attaches for them (see the file comment). */
export class DetachedResyncs {
  private readonly candidates = new Set<string>();
  private readonly healing = new Map<string, Healing>();
  /** When an attach for a resync of each volume was last made or given up. */
  private readonly tried = new Map<string, number>();

  constructor(private readonly ctx: DetachedResyncContext) {}

  /** Follows a volume record (`undefined`: deleted); true when it became a candidate. */
  note(volumeId: string, record: VolumeRecord | undefined): boolean {
    const was = this.candidates.has(volumeId);
    if (record !== undefined && needsDetachedResync(record, this.ctx.nodeId)) this.candidates.add(volumeId);
    else this.candidates.delete(volumeId);
    return !was && this.candidates.has(volumeId);
  }

  /** Whether this node attached volume `volumeId` for a resync. */
  has(volumeId: string): boolean {
    return this.healing.has(volumeId);
  }

  /**
   * Attaches the candidates that are due (pass number `pass`; `online`: nodes that came online since the last pass);
   * resolves with the ids attached (the manager then runs another pass, which starts their copies).
   */
  async attachDue(pass: number, online: ReadonlySet<string>): Promise<string[]> {
    const attached: string[] = [];
    for (const id of [...this.candidates]) {
      if (this.healing.has(id) || this.ctx.now() - (this.tried.get(id) ?? 0) < this.ctx.retryMs) continue;
      const record = await this.ctx.store.get<VolumeRecord>(catalogKeys.volume(id));
      if (record === undefined || !needsDetachedResync(record, this.ctx.nodeId)) {
        this.candidates.delete(id);
        continue;
      }
      if (!(await this.due(record, online))) continue;
      this.tried.set(id, this.ctx.now());
      let device: BlockDevice;
      try {
        device = await this.ctx.attach(record);
      } catch (err: unknown) {
        // Attached meanwhile (by a client, or by another holder for its resync): nothing for this node to do.
        if (!isFerryError(err, 'FAILED_PRECONDITION'))
          this.ctx.log(`volume ${record.name}: attaching to resync: ${err}`);
        continue;
      }
      this.healing.set(id, { device, pass });
      attached.push(id);
      // Asked for before this attach was known here (the watch found nothing to give up then).
      if ((await this.ctx.store.get(`${YIELD_PREFIX}${id}`)) !== undefined) await this.giveUp(id);
    }
    return attached;
  }

  /** Ends the attaches made before pass `pass` whose copies are over (`busy`: a copy of the volume still runs). */
  async endIdle(pass: number, busy: (volumeId: string) => boolean): Promise<void> {
    for (const [id, h] of [...this.healing]) {
      if (h.pass < pass && !busy(id)) await this.giveUp(id);
    }
  }

  /** Ends this node's attach of `volumeId` for a resync, if it has one (its copies stop as at any detach). */
  async giveUp(volumeId: string): Promise<void> {
    const h = this.healing.get(volumeId);
    if (h === undefined) return;
    this.healing.delete(volumeId);
    this.tried.set(volumeId, this.ctx.now());
    await h.device
      .close()
      .catch((err: unknown) => this.ctx.log(`volume ${volumeId}: ending its resync attach: ${err}`));
  }

  /** Ends every attach for a resync. */
  async close(): Promise<void> {
    for (const id of [...this.healing.keys()]) await this.giveUp(id);
  }

  /** A lagging replica of `record` can be worked on: its node is online, or it is due for replacement. */
  private async due(record: VolumeRecord, online: ReadonlySet<string>): Promise<boolean> {
    for (const r of record.replicas ?? []) {
      if (inSync(r)) continue;
      if (this.ctx.expired(r) || online.has(r.node_id)) return true;
      if ((await this.ctx.store.get(`${NODES_PREFIX}${r.node_id}`)) !== undefined) return true;
    }
    return false;
  }
}
