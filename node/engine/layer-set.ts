import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import type { ClusterStore, StoreOp } from '../cluster/types.js';
import { GRANULE } from './constants.js';
import { failpoint } from './failpoints.js';
import type { Gate } from './gate.js';
import { ABSENT, DATA, type Run, ZERO } from './granule-map.js';
import type { IoTracker } from './io-tracker.js';
import { Layer, type LayerRecord, removeLayerFiles } from './layer.js';
import type { LocalLayerKeys } from './local-layers.js';

/** Granules copied per step of a merge (1 MiB): the writer of the child is held back only this long. */
const MERGE_STEP = 256;
/** Copies in flight while a layer absorbs its child. */
const ABSORB_COPIES = 8;
/**
 * While space is short, a merge makes what it copied durable in the child every this many granules (4 MiB) and gives
 * the merged layer's blocks of that range back at once, so it needs no more than this much free space.
 */
const TIGHT_MERGE_BATCH = 1024;

export function newId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * All layers this node holds (those under its keys, never another node's), their tree, and the rule that keeps it small: a layer that no volume tops and no
 * snapshot names is garbage; with no child it is deleted, with one child it is merged into that child (the child
 * takes every granule it lacks, then the layer is unlinked), with two or more it stays, hidden, until it has one.
 * Every step is idempotent, so the same rule run at start-up finishes whatever a crash interrupted.
 */
export class LayerSet {
  readonly byId = new Map<string, Layer>();
  /**
   * Layer records found at load whose parent (or an ancestor's) has no record, by id, with what they lack (for an
   * error or a warning): left out of the tree (see `load`). The engine drops them (`dropOrphans`) unless a volume or
   * snapshot this node holds needs one.
   */
  readonly orphans = new Map<string, string>();
  private readonly refs = new Map<Layer, number>();

  constructor(
    readonly dir: string,
    private readonly store: ClusterStore,
    /** This node's layer keys: the set loads and collects only these. */
    private readonly local: LocalLayerKeys,
    private readonly tracker: IoTracker,
    /** The gate of the volume whose writable top is `layer`, if any. */
    private readonly gateOfTop: (layer: Layer) => Gate | undefined,
    /** The store changes that make every snapshot naming `from` name `to`, and their in-memory counterpart. */
    private readonly retarget: (from: Layer, to: Layer) => { ops: StoreOp[]; apply: () => void },
    /** Whether the data directory is short of space (the rule then frees as it copies, and never absorbs). */
    private readonly tight: () => boolean = () => false,
    /**
     * Whether `layer`'s id must stay (a snapshot of a replicated volume names it, and every replica names it alike):
     * the rule then merges into it instead of absorbing it (which would rename it). Default: none.
     */
    private readonly pinned: (layer: Layer) => boolean = () => false,
  ) {}

  /**
   * Builds the tree from the store's records and removes files that no record names. A record whose parent has no
   * record (nor its parent's, up the chain) is an orphan, kept out of the tree with its files: the record of a new
   * head that a coordinator committed for a snapshot this node had staged and then abandoned when the connection
   * ended before the commit reached it, whose parent this node later collected (docs/REPLICATION.md, S4).
   */
  async load(): Promise<void> {
    const records = await this.store.list<LayerRecord>(this.local.layers);
    const byId = new Map(records.map(({ value }) => [value.id, value]));
    /** What `record`'s chain of parents lacks, or undefined when it reaches a base. */
    const lacks = (record: LayerRecord): string | undefined => {
      const seen: string[] = [];
      for (let r: LayerRecord | undefined = record; r !== undefined && r.parent !== null; r = byId.get(r.parent)) {
        if (seen.includes(r.id)) return `layer ${record.id} is in a cycle of parents (${seen.join(' -> ')})`;
        seen.push(r.id);
        if (!byId.has(r.parent)) return `layer ${record.id} names a missing parent ${r.parent}`;
      }
      return undefined;
    };
    for (const { value } of records) {
      const lacking = lacks(value);
      if (lacking !== undefined) this.orphans.set(value.id, lacking);
      else this.byId.set(value.id, new Layer(value.id, this.dir, value.frozen));
    }
    for (const { value } of records) {
      const layer = this.byId.get(value.id);
      if (layer === undefined || value.parent === null) continue;
      const parent = this.byId.get(value.parent) as Layer;
      layer.parent = parent;
      parent.children.add(layer);
    }
    for (const file of await readdir(this.dir)) {
      const id = file.split('.')[0] ?? '';
      if (!this.byId.has(id) && !this.orphans.has(id)) await removeLayerFiles(this.dir, id);
    }
  }

  /** Deletes the orphans' records and files (`load`): nothing this node holds needs them. */
  async dropOrphans(): Promise<void> {
    if (this.orphans.size === 0) return;
    const ids = [...this.orphans.keys()];
    await this.store.commit(ids.map((id) => this.local.del(id)));
    for (const id of ids) await removeLayerFiles(this.dir, id);
    this.orphans.clear();
  }

  get(id: string): Layer {
    const l = this.byId.get(id);
    if (l === undefined) throw new Error(`unknown layer ${id}`);
    return l;
  }

  /**
   * A new, empty layer (not yet in the store: commit `local.put(layer.record)` with the change that uses it), named
   * `id` when given (every replica of a volume names its layers alike: the coordinator picks the id).
   */
  create(parent: Layer | undefined, frozen = false, id: string = newId()): Layer {
    if (this.byId.has(id)) throw new Error(`layer ${id} exists already`);
    const layer = new Layer(id, this.dir, frozen);
    if (parent !== undefined) {
      layer.parent = parent;
      parent.children.add(layer);
    }
    this.byId.set(layer.id, layer);
    return layer;
  }

  /** Forgets a layer created in memory whose commit failed. */
  discard(layer: Layer): void {
    layer.parent?.children.delete(layer);
    this.byId.delete(layer.id);
  }

  ref(layer: Layer): void {
    this.refs.set(layer, (this.refs.get(layer) ?? 0) + 1);
  }

  unref(layer: Layer): void {
    const n = (this.refs.get(layer) ?? 0) - 1;
    if (n <= 0) this.refs.delete(layer);
    else this.refs.set(layer, n);
  }

  isReferenced(layer: Layer): boolean {
    return (this.refs.get(layer) ?? 0) > 0;
  }

  /** Applies the garbage rule to every layer (start-up). */
  async collectAll(): Promise<void> {
    for (const layer of [...this.byId.values()]) {
      if (this.byId.has(layer.id)) await this.collect(layer);
    }
  }

  /** Applies the garbage rule to `layer`, then to its parent if that changed. */
  async collect(layer: Layer): Promise<void> {
    let current: Layer | undefined = layer;
    while (current !== undefined && this.byId.has(current.id) && !this.isReferenced(current)) {
      if (current.children.size >= 2) return;
      const parent: Layer | undefined = current.parent;
      if (current.children.size === 0) {
        await this.store.commit([this.local.del(current.id)]);
        failpoint('layer-delete.after-commit');
        this.unlink(current);
        await this.retire(current);
        current = parent;
        continue;
      }
      const child = [...current.children][0] as Layer;
      await current.load();
      await child.load();
      // An absorb copies first and frees only at its commit; a merge can free as it goes (see merge), so it is the
      // one taken when space is short.
      if (
        !this.tight() &&
        !this.pinned(child) &&
        child.frozen &&
        child.granules.presentCount < current.granules.presentCount
      ) {
        await this.absorbChild(current, child);
        return;
      }
      await this.merge(current, child);
      const childRecord = { ...child.record, parent: parent?.id ?? null };
      await this.store.commit([this.local.put(childRecord), this.local.del(current.id)]);
      failpoint('merge.after-commit');
      this.unlink(current);
      child.parent = parent;
      parent?.children.add(child);
      await this.retire(current);
      return;
    }
  }

  /**
   * The cheap direction when the only child is frozen and smaller (the snapshot of the next backup, say): copy the
   * child's granules up into the garbage layer, which then takes the child's place. While copying, the child's view
   * is unchanged: it reads its own granules first, and only granules it holds are overwritten below it.
   */
  private async absorbChild(layer: Layer, child: Layer): Promise<void> {
    const isBase = layer.parent === undefined;
    // Copies of the child's data run ABSORB_COPIES at a time: a backup's snapshot of scattered small writes is
    // hundreds of short runs, and copied one by one they cost a round trip to the disk each. Runs never overlap.
    const copies = new Set<Promise<void>>();
    let failure: unknown;
    const copy = async (s: number, count: number): Promise<void> => {
      const buf = Buffer.allocUnsafe(count * GRANULE);
      await child.readData(buf, 0, buf.length, s * GRANULE);
      await layer.writeData(buf, 0, buf.length, s * GRANULE);
      layer.mark(s, count, DATA);
    };
    for (const run of [...child.granules.presentRuns()]) {
      for (let s = run.start; s < run.start + run.count && failure === undefined; s += MERGE_STEP) {
        const count = Math.min(MERGE_STEP, run.start + run.count - s);
        if (run.state === DATA) {
          while (copies.size >= ABSORB_COPIES) await Promise.race(copies);
          const p: Promise<void> = copy(s, count)
            .catch((err: unknown) => {
              failure ??= err;
            })
            .finally(() => copies.delete(p));
          copies.add(p);
        } else {
          const held = [...layer.granules.presentRuns(s, s + count)].filter((r) => r.state === DATA);
          layer.mark(s, count, isBase ? ABSENT : ZERO);
          for (const r of held) await layer.release(r.start, r.count);
        }
      }
      if (failure !== undefined) break;
      failpoint('absorb.midway');
    }
    // Every copy has ended before this returns or throws: none may still write into the layer afterwards.
    await Promise.all(copies);
    if (failure !== undefined) throw failure;
    await layer.flush();
    const moved = this.retarget(child, layer);
    const ops: StoreOp[] = [this.local.put({ ...layer.record, frozen: true }), this.local.del(child.id), ...moved.ops];
    for (const grandchild of child.children) ops.push(this.local.put({ ...grandchild.record, parent: layer.id }));
    await this.store.commit(ops);
    failpoint('absorb.after-commit');
    layer.frozen = true;
    layer.children.delete(child);
    for (const grandchild of [...child.children]) {
      grandchild.parent = layer;
      layer.children.add(grandchild);
    }
    child.children.clear();
    this.byId.delete(child.id);
    const refs = this.refs.get(child) ?? 0;
    this.refs.delete(child);
    if (refs > 0) this.refs.set(layer, (this.refs.get(layer) ?? 0) + refs);
    moved.apply();
    await this.retire(child);
  }

  private unlink(layer: Layer): void {
    layer.parent?.children.delete(layer);
    for (const c of layer.children) c.parent = undefined;
    this.byId.delete(layer.id);
  }

  /** Closes and removes a layer's files once no I/O can still be reading it. */
  private async retire(layer: Layer): Promise<void> {
    await this.tracker.drain();
    await layer.destroy();
  }

  /** Copies into `child` every granule of `layer` that `child` does not hold, durably. */
  private async merge(layer: Layer, child: Layer): Promise<void> {
    await layer.load();
    await child.load();
    const isBase = layer.parent === undefined;
    const runs = [...layer.granules.presentRuns()];
    let merged = 0;
    // Granule ranges of `layer` copied (or already held by the child) since the child was last flushed.
    let unfreed: Run[] = [];
    let unfreedCount = 0;
    const free = async (): Promise<void> => {
      // The child holds every granule of these ranges durably once flushed, and no read still in flight can be
      // reading them from `layer` once the tracker has drained: their blocks in `layer` are dead.
      await child.flush();
      await this.tracker.drain();
      for (const r of unfreed) await layer.release(r.start, r.count);
      unfreed = [];
      unfreedCount = 0;
    };
    for (const run of runs) {
      if (run.state === ZERO && isBase) continue;
      for (let s = run.start; s < run.start + run.count; s += MERGE_STEP) {
        const count = Math.min(MERGE_STEP, run.start + run.count - s);
        const buf = run.state === DATA ? Buffer.allocUnsafe(count * GRANULE) : undefined;
        if (buf !== undefined) await layer.readData(buf, 0, buf.length, s * GRANULE);
        const gate = this.gateOfTop(child);
        if (gate !== undefined) await gate.enterExclusive();
        try {
          let g = s;
          while (g < s + count) {
            if (child.granules.get(g) !== ABSENT) {
              g++;
              continue;
            }
            let e = g + 1;
            while (e < s + count && child.granules.get(e) === ABSENT) e++;
            if (buf !== undefined) await child.writeData(buf, (g - s) * GRANULE, (e - g) * GRANULE, g * GRANULE);
            child.mark(g, e - g, run.state);
            g = e;
          }
        } finally {
          gate?.leaveExclusive();
        }
        merged += count;
        if (merged >= 4 * MERGE_STEP) failpoint('merge.midway');
        if (buf !== undefined) {
          unfreed.push({ start: s, count, state: DATA });
          unfreedCount += count;
          if (unfreedCount >= TIGHT_MERGE_BATCH && this.tight()) await free();
        }
      }
    }
    await child.flush();
  }

  /** Closes every layer's files. */
  async closeAll(): Promise<void> {
    for (const l of this.byId.values()) await l.close();
  }
}
