/**
 * The client side of one replica another node holds, opened (OPEN) on a shared replication connection: every
 * `Replica` call is one request on that connection under the replica's handle and the coordinator's epoch. The
 * replica's generation is the one the server reported with its last answer (each answer carries it); `refresh`
 * asks for it. A snapshot's `commit`/`abandon` are sent at once, in order with the requests after them; a commit
 * that fails leaves the replica failed (every later call rejects), since its head may no longer be the catalog's.
 */
import { FerryError } from '../../common/index.js';
import type { StoreOp } from '../cluster/types.js';
import type { ReplicaTarget } from '../engine/cluster-ports.js';
import type { RecentWrites, Replica, ReplicaDiffRequest, ReplicaSnapshot } from '../engine/replica.js';
import type { ChangedBlocksPage, StatusExtent, WriteOptions } from '../engine/types.js';
import type { Answer, Call, ReplicationClient } from './client.js';
import { EXTENT_BYTES, FLAG_FUA, FLAG_UNCACHED, jsonPayload, Op, parseJson } from './frame.js';

/** Where an opened replica lives on its connection. */
export interface RemoteReplicaOpen {
  client: ReplicationClient;
  nodeId: string;
  volumeId: string;
  snapshotId?: string;
  epoch: number;
  /** The server's handle of the replica on this connection. */
  handle: number;
  /** The replica's generation when it was opened. */
  generation: number;
}

export class RemoteReplica implements Replica {
  readonly nodeId: string;
  private readonly client: ReplicationClient;
  private readonly handle: number;
  private readonly epoch: number;
  private readonly name: string;
  private lastGeneration: number;
  private failure: FerryError | undefined;
  private closed = false;
  private readonly noteGeneration = (answer: Answer): void => {
    if (answer.value > this.lastGeneration) this.lastGeneration = answer.value;
  };

  /** Opens `target` (OPEN) on the connection `client` to node `nodeId`. */
  static async open(client: ReplicationClient, nodeId: string, target: ReplicaTarget): Promise<RemoteReplica> {
    const body =
      target.snapshotId === undefined
        ? { volume_id: target.volumeId }
        : { volume_id: target.volumeId, snapshot_id: target.snapshotId };
    const answer = await client.call({ op: Op.OPEN, handle: 0, epoch: target.epoch, payload: jsonPayload(body) });
    const opened = parseJson(answer.payload, 'an OPEN answer') as { handle?: unknown; generation?: unknown } | null;
    if (typeof opened?.handle !== 'number' || typeof opened.generation !== 'number') {
      throw new FerryError('DATA_CORRUPTION', `node ${nodeId} answered OPEN with the wrong shape`);
    }
    return new RemoteReplica({
      client,
      nodeId,
      volumeId: target.volumeId,
      ...(target.snapshotId !== undefined && { snapshotId: target.snapshotId }),
      epoch: target.epoch,
      handle: opened.handle,
      generation: opened.generation,
    });
  }

  constructor(open: RemoteReplicaOpen) {
    this.client = open.client;
    this.nodeId = open.nodeId;
    this.handle = open.handle;
    this.epoch = open.epoch;
    this.lastGeneration = open.generation;
    this.name = open.snapshotId === undefined ? open.volumeId : `${open.volumeId}@${open.snapshotId}`;
  }

  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.send({ op: Op.READ, handle: this.handle, epoch: this.epoch, offset, length, into }).then((answer) => {
      this.noteGeneration(answer);
      if (answer.payload.length !== length) {
        throw new FerryError(
          'DATA_CORRUPTION',
          `node ${this.nodeId} read ${answer.payload.length} bytes, not ${length}`,
        );
      }
      return answer.payload;
    });
  }

  write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    if (data.length === 0) return this.failure === undefined ? Promise.resolve() : Promise.reject(this.failure);
    return this.change({ op: Op.WRITE, handle: this.handle, epoch: this.epoch, offset, payload: data }, options);
  }

  writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.change({ op: Op.ZERO, handle: this.handle, epoch: this.epoch, offset, length }, options);
  }

  trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.change({ op: Op.TRIM, handle: this.handle, epoch: this.epoch, offset, length }, options);
  }

  flush(): Promise<void> {
    return this.change({ op: Op.FLUSH, handle: this.handle, epoch: this.epoch }, undefined);
  }

  async blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    const answer = await this.send({ op: Op.BLOCK_STATUS, handle: this.handle, epoch: this.epoch, offset, length });
    const raw = answer.payload;
    if (raw.length % EXTENT_BYTES !== 0) {
      throw new FerryError('DATA_CORRUPTION', `node ${this.nodeId} sent a block status of ${raw.length} bytes`);
    }
    const out: StatusExtent[] = [];
    for (let at = 0; at < raw.length; at += EXTENT_BYTES) {
      const extentLength = raw.readUInt32LE(at) + raw.readUInt32LE(at + 4) * 0x100000000;
      out.push({ length: extentLength, state: raw[at + 8] === 0 ? 'data' : 'zero' });
    }
    return out;
  }

  async snapshot(snapshotId: string, headId?: string): Promise<ReplicaSnapshot> {
    const answer = await this.send({
      op: Op.SNAPSHOT_PREPARE,
      handle: this.handle,
      epoch: this.epoch,
      payload: jsonPayload(
        headId === undefined ? { snapshot_id: snapshotId } : { snapshot_id: snapshotId, head_id: headId },
      ),
    });
    const staged = stagedOf(parseJson(answer.payload, 'a staged snapshot'), this.nodeId);
    let settled = false;
    const settle = (op: Op): void => {
      if (settled) return;
      settled = true;
      const sent = this.send({ op, handle: this.handle, epoch: this.epoch, offset: staged.token });
      if (op === Op.SNAPSHOT_COMMIT) {
        sent.then(this.noteGeneration, (err: unknown) => {
          this.failure ??= new FerryError(
            'UNAVAILABLE',
            `the commit of snapshot ${snapshotId} did not reach the replica of ${this.name} on node ${this.nodeId}: it is out of sync (${err instanceof Error ? err.message : String(err)})`,
            { cause: err },
          );
        });
      } else {
        // An abandon that does not arrive is done by the server when the connection ends.
        sent.catch(() => undefined);
      }
    };
    return {
      ops: staged.ops,
      point: staged.point,
      head: staged.head,
      commit: () => settle(Op.SNAPSHOT_COMMIT),
      abandon: () => settle(Op.SNAPSHOT_ABANDON),
    };
  }

  async changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage> {
    const answer = await this.send({
      op: Op.CHANGED_BLOCKS,
      handle: this.handle,
      epoch: this.epoch,
      payload: jsonPayload(request),
    });
    return parseJson(answer.payload, 'a changed-blocks page') as ChangedBlocksPage;
  }

  generation(): number {
    return this.lastGeneration;
  }

  async recentWrites(): Promise<RecentWrites> {
    const answer = await this.send({ op: Op.RECENT_WRITES, handle: this.handle, epoch: this.epoch });
    this.noteGeneration(answer);
    return recentOf(parseJson(answer.payload, 'a recent-writes answer'), this.nodeId);
  }

  /** Asks the server for the replica's generation now (and keeps it for `generation()`). */
  async refresh(): Promise<number> {
    this.noteGeneration(await this.send({ op: Op.GENERATION, handle: this.handle, epoch: this.epoch }));
    return this.lastGeneration;
  }

  /** Closes the replica on the server. Later calls reject FAILED_PRECONDITION. A lost connection closed it already. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failure = new FerryError(
      'FAILED_PRECONDITION',
      `the replica of ${this.name} on node ${this.nodeId} is closed`,
    );
    if (this.client.broken) return;
    await this.client.call({ op: Op.CLOSE, handle: this.handle, epoch: this.epoch }).catch((err: unknown) => {
      if (!this.client.broken) throw err;
    });
  }

  private send(call: Call): Promise<Answer> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return this.client.call(call);
  }

  private change(call: Call, options: WriteOptions | undefined): Promise<void> {
    const flags =
      (options?.fua === true ? FLAG_FUA : 0) | (call.op === Op.WRITE && options?.uncached === true ? FLAG_UNCACHED : 0);
    if (flags !== 0) call.flags = flags;
    return this.send(call).then(this.noteGeneration);
  }
}

function recentOf(value: unknown, nodeId: string): RecentWrites {
  const v = value as Partial<RecentWrites> | null;
  const ok =
    v !== null &&
    typeof v === 'object' &&
    typeof v.complete === 'boolean' &&
    Array.isArray(v.ranges) &&
    v.ranges.every((r) => Array.isArray(r) && r.length === 2 && r.every((n) => Number.isSafeInteger(n) && n >= 0));
  if (!ok) throw new FerryError('DATA_CORRUPTION', `node ${nodeId} sent recent writes of the wrong shape`);
  return { complete: v.complete as boolean, ranges: v.ranges as RecentWrites['ranges'] };
}

interface Staged {
  token: number;
  ops: StoreOp[];
  point: string;
  head: string;
}

function stagedOf(value: unknown, nodeId: string): Staged {
  const v = value as Partial<Staged> | null;
  if (
    v === null ||
    typeof v !== 'object' ||
    typeof v.token !== 'number' ||
    !Array.isArray(v.ops) ||
    typeof v.point !== 'string' ||
    typeof v.head !== 'string'
  ) {
    throw new FerryError('DATA_CORRUPTION', `node ${nodeId} sent a staged snapshot of the wrong shape`);
  }
  return { token: v.token, ops: v.ops, point: v.point, head: v.head };
}
