/**
 * This node's replication service: a ReplicationServer whose requests reach the replicas the node holds, opened
 * through the engine's `ReplicaHost`. Each connection opens a volume (or snapshot view) once, whatever the number of
 * OPENs for it, and closes what it opened when it ends, abandoning the snapshots it staged and did not settle.
 *
 * Fencing (docs/REPLICATION.md, F3): the service keeps, per volume, the highest epoch an OPEN of its head brought. An
 * OPEN with a lower one, and any request on the head whose epoch is not that one, is refused FAILED_PRECONDITION with
 * the epoch held (StaleEpochError). A snapshot's view is not fenced and never raises the epoch. The service's
 * epochs are in memory; the engine's ReplicaHost keeps them durably (node/engine/epoch-file.ts) and refuses an open
 * under an older one after a restart, and its replicas refuse every request once a later epoch opened them, even
 * one opened in the engine's own process (a takeover on this node).
 *
 * One connection per peer writes a volume's head (F7): an OPEN of the head on a connection supersedes the head that
 * the same peer node opened on another connection. That connection's requests in progress on it finish before the
 * OPEN answers, and its later ones are refused. A coordinator whose connection broke (a timeout, a partition)
 * opens the replica again on a new one; without this, writes it sent on the old one before the break, still in the
 * network or in a kernel's send queue, could arrive and land after the new connection's writes (a resync's copy,
 * a newer write to the same block) and leave the replica holding old data while it counts as in-sync. An OPEN that
 * raises the epoch (a takeover from another node) also waits for the head requests in progress on every other
 * connection: the older epoch's are refused from then on (F3), and none of them lands after the OPEN answers.
 *
 * A snapshot staged on a connection that ends (or is superseded, or closes its handle) before its commit or abandon
 * arrived is settled by the store (S4, `ReplicaSnapshot.lost`): committed when the coordinator's transaction
 * committed it, else abandoned behind a tombstone that transaction compares. The next OPEN of the volume's head waits
 * for it; a store that does not answer for about 30 s leaves it abandoned without a tombstone (logged).
 */
import { FerryError, invalidArgument } from '../../common/index.js';
import type { ReplicaHost } from '../engine/cluster-ports.js';
import type { Replica, ReplicaDiffRequest, ReplicaSnapshot } from '../engine/replica.js';
import type { WriteOptions } from '../engine/types.js';
import {
  EXTENT_BYTES,
  FLAG_FUA,
  FLAG_UNCACHED,
  jsonPayload,
  Op,
  parseJson,
  type RequestHeader,
  StaleEpochError,
} from './frame.js';
import { ReplicationServer } from './server.js';
import type { NodeCredentials, ReplicationHandler, ReplicationSession, Served } from './types.js';

export interface ServeReplicasOptions {
  /** The replicas this node holds (the engine's). */
  host: ReplicaHost;
  credentials: NodeCredentials;
  /** Where to listen (port 0: any free port, see the result's `port`). */
  listen: { host: string; port: number };
  /** Events worth a line in the node's log (connections, and failures to close a replica). */
  log?: (event: string, fields: Record<string, unknown>) => void;
  /** Which authenticated node ids may connect; default every node with a certificate from the cluster CA. */
  acceptPeer?: (nodeId: string) => boolean;
  /** Bytes of requests served at once per connection before the server stops reading it; default 32 MiB. */
  maxInFlightBytes?: number;
}

export interface ReplicaService {
  /** The port it listens on. */
  readonly port: number;
  /** Stops listening and cuts every connection (their replicas are closed). */
  close(): Promise<void>;
}

/**
 * The handler of a replication server that serves the replicas of `host` (serveReplicas uses it; tests that need the
 * server itself too).
 */
export function replicaHandler(host: ReplicaHost, log?: ServeReplicasOptions['log']): ReplicationHandler {
  const shared: Shared = { epochs: new Map(), sessions: new Set(), settling: new Map() };
  return {
    connect: (peer) => {
      log?.('replication.connect', { peer });
      return new ReplicaSession(host, shared, peer, log);
    },
  };
}

/** What every connection of the service shares. */
interface Shared {
  /** The highest epoch opened per volume. */
  readonly epochs: Map<string, number>;
  /** Every open connection. */
  readonly sessions: Set<ReplicaSession>;
  /** Per volume, the staged snapshots being settled by the store (S4): an OPEN of the head waits for them. */
  readonly settling: Map<string, Promise<void>>;
}

/** Starts the replication service of this node. */
export async function serveReplicas(options: ServeReplicasOptions): Promise<ReplicaService> {
  const handler = replicaHandler(options.host, options.log);
  const server = await ReplicationServer.listen({
    credentials: options.credentials,
    handler,
    host: options.listen.host,
    port: options.listen.port,
    acceptPeer: options.acceptPeer,
    maxInFlightBytes: options.maxInFlightBytes,
  });
  return { port: server.address().port, close: () => server.close() };
}

interface Opened {
  key: string;
  volumeId: string;
  /** A read-only view of a snapshot (not the head). */
  view: boolean;
  replica: Replica;
  /** OPENs not yet matched by a CLOSE. */
  opens: number;
  /** Its requests being served. */
  inFlight: Set<Promise<unknown>>;
}

interface StagedHere {
  handle: number;
  staged: ReplicaSnapshot;
}

const NOTHING: Served = {};

/** One connection's replicas and staged snapshots. */
class ReplicaSession implements ReplicationSession {
  private readonly handles = new Map<number, Opened>();
  private readonly byKey = new Map<string, Promise<number>>();
  private readonly staged = new Map<number, StagedHere>();
  private nextHandle = 1;
  private nextToken = 1;
  private closed = false;
  /** Handles of heads that a later OPEN on another connection superseded, with the volume's id. */
  private readonly superseded = new Map<number, string>();

  constructor(
    private readonly host: ReplicaHost,
    private readonly shared: Shared,
    readonly peer: string,
    private readonly log: ServeReplicasOptions['log'],
  ) {
    shared.sessions.add(this);
  }

  serve(request: RequestHeader, payload: Buffer): Promise<Served> {
    switch (request.op) {
      case Op.OPEN:
        return this.open(request, payload);
      case Op.DROP:
        return this.drop(request, payload);
      default:
        return this.onHandle(request, payload);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.shared.sessions.delete(this);
    const settled = [...this.handles].map(([handle, opened]) => this.settleStaged(handle, opened.volumeId));
    const opened = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(settled);
    await Promise.all(opened.map((o) => this.release(o)));
    this.log?.('replication.disconnect', { peer: this.peer });
  }

  /**
   * Checks `epoch` against the volume's (F3). `open`: an OPEN of the head, which makes a higher epoch the volume's;
   * `head`: a request on the head, which must carry the volume's epoch; `view`: a snapshot's view, which reads frozen
   * data (an older coordinator cannot make it diverge): not fenced, and it never raises the epoch (a reader such as a
   * backup does not fence the coordinator). The engine's ReplicaHost decides the same.
   */
  private fence(volumeId: string, epoch: number, mode: 'open' | 'head' | 'view'): 'raised' | undefined {
    if (mode === 'view') return undefined;
    const held = this.shared.epochs.get(volumeId) ?? 0;
    if (epoch === held) return undefined;
    if (epoch > held && mode === 'open') {
      this.shared.epochs.set(volumeId, epoch);
      return 'raised';
    }
    throw new StaleEpochError(
      held,
      epoch < held
        ? `stale epoch ${epoch} for volume "${volumeId}" (this replica holds epoch ${held}): the sender is no longer its coordinator`
        : `epoch ${epoch} of volume "${volumeId}" was never opened here (this replica holds epoch ${held}): OPEN it first`,
    );
  }

  private async open(request: RequestHeader, payload: Buffer): Promise<Served> {
    const body = parseJson(payload, 'an OPEN body') as { volume_id?: unknown; snapshot_id?: unknown } | null;
    const volumeId = body?.volume_id;
    const snapshotId = body?.snapshot_id;
    if (typeof volumeId !== 'string' || volumeId.length === 0) throw invalidArgument('volume_id', 'required');
    if (snapshotId !== undefined && typeof snapshotId !== 'string') {
      throw invalidArgument('snapshot_id', 'must be a string');
    }
    if (snapshotId === undefined) await this.shared.settling.get(volumeId);
    const raised = this.fence(volumeId, request.epoch, snapshotId === undefined ? 'open' : 'view') === 'raised';
    if (snapshotId === undefined) {
      const others = [...this.shared.sessions].filter((s) => s !== this && (s.peer === this.peer || raised));
      await Promise.all(others.map((s) => (s.peer === this.peer ? s.supersede(volumeId) : s.settleHead(volumeId))));
    }
    const key = snapshotId === undefined ? volumeId : `${volumeId}@${snapshotId}`;
    let handle = this.byKey.get(key);
    if (handle === undefined) {
      handle = this.openHandle(key, volumeId, request.epoch, snapshotId);
      this.byKey.set(key, handle);
      handle.catch(() => this.byKey.delete(key));
    }
    const opened = this.handles.get(await handle);
    if (opened === undefined || this.closed) {
      throw new FerryError('UNAVAILABLE', `the replica of ${key} was closed while it was being opened`);
    }
    opened.opens += 1;
    const id = await handle;
    return { payload: jsonPayload({ handle: id, generation: opened.replica.generation() }) };
  }

  private async openHandle(key: string, volumeId: string, epoch: number, snapshotId?: string): Promise<number> {
    const replica = await this.host.open(
      snapshotId === undefined ? { volumeId, epoch } : { volumeId, epoch, snapshotId },
    );
    if (this.closed) {
      await replica.close();
      throw new FerryError('UNAVAILABLE', `the connection ended while ${key} was being opened`);
    }
    const handle = this.nextHandle++;
    this.handles.set(handle, { key, volumeId, view: snapshotId !== undefined, replica, opens: 0, inFlight: new Set() });
    return handle;
  }

  /** This connection's handles of the head of `volumeId`. */
  private heads(volumeId: string): [number, Opened][] {
    return [...this.handles].filter(([, opened]) => opened.volumeId === volumeId && !opened.view);
  }

  /** Resolves once the requests in progress on the head of `volumeId` on this connection have finished. */
  private async settleHead(volumeId: string): Promise<void> {
    await Promise.allSettled(this.heads(volumeId).flatMap(([, opened]) => [...opened.inFlight]));
  }

  /**
   * The same peer opened the head of `volumeId` on another connection (F7): its handle here stops serving, once the
   * requests in progress on it have finished; later ones are refused.
   */
  private async supersede(volumeId: string): Promise<void> {
    const gone: Opened[] = [];
    const settles: Promise<void>[] = [];
    for (const [handle, opened] of this.heads(volumeId)) {
      this.handles.delete(handle);
      this.byKey.delete(opened.key);
      this.superseded.set(handle, volumeId);
      settles.push(this.settleStaged(handle, volumeId));
      gone.push(opened);
    }
    if (gone.length === 0) return;
    this.log?.('replication.superseded', { peer: this.peer, volume: volumeId });
    await Promise.all(
      gone.map(async (opened) => {
        await Promise.allSettled([...opened.inFlight]);
        await this.release(opened);
      }),
    );
    await Promise.all(settles);
  }

  private async drop(request: RequestHeader, payload: Buffer): Promise<Served> {
    const body = parseJson(payload, 'a DROP body') as { volume_id?: unknown } | null;
    const volumeId = body?.volume_id;
    if (typeof volumeId !== 'string' || volumeId.length === 0) throw invalidArgument('volume_id', 'required');
    // A drop comes from whoever lowers the replica set, not necessarily a coordinator: epoch 0 is not checked.
    if (request.epoch !== 0) this.fence(volumeId, request.epoch, 'head');
    for (const [handle, opened] of this.handles) {
      if (opened.volumeId !== volumeId) continue;
      this.handles.delete(handle);
      this.abandonStaged(handle);
      await this.release(opened);
    }
    await this.host.drop(volumeId);
    return NOTHING;
  }

  private onHandle(request: RequestHeader, payload: Buffer): Promise<Served> {
    const opened = this.handles.get(request.handle);
    const superseded = this.superseded.get(request.handle);
    if (opened === undefined && superseded !== undefined) {
      if (request.op === Op.CLOSE) {
        this.superseded.delete(request.handle);
        return Promise.resolve(NOTHING);
      }
      // A later epoch (a takeover) says so first.
      try {
        this.fence(superseded, request.epoch, 'head');
      } catch (err: unknown) {
        return Promise.reject(err);
      }
      return Promise.reject(
        new FerryError(
          'FAILED_PRECONDITION',
          `the replica of volume "${superseded}" was opened again on another connection from this node; this one no longer serves it`,
        ),
      );
    }
    if (opened === undefined) {
      return Promise.reject(
        new FerryError(
          'NOT_FOUND',
          `no replica is open under handle ${request.handle} on this connection: OPEN it first`,
        ),
      );
    }
    // Closing is always allowed: a fenced coordinator still lets go of what it opened.
    if (request.op !== Op.CLOSE) this.fence(opened.volumeId, request.epoch, opened.view ? 'view' : 'head');
    if (request.op === Op.CLOSE) return this.closeHandle(request.handle, opened);
    const serving = this.dispatch(request, payload, opened);
    const tracked = serving.then(
      () => undefined,
      () => undefined,
    );
    opened.inFlight.add(tracked);
    void tracked.then(() => opened.inFlight.delete(tracked));
    return serving;
  }

  private dispatch(request: RequestHeader, payload: Buffer, opened: Opened): Promise<Served> {
    const replica = opened.replica;
    const fua = (request.flags & FLAG_FUA) !== 0 ? FUA : undefined;
    switch (request.op) {
      case Op.READ:
        return replica
          .read(request.offset, request.length)
          .then((data) => ({ payload: data, value: replica.generation() }));
      case Op.WRITE:
        return replica
          .write(request.offset, payload, writeOptions(request.flags))
          .then(() => ({ value: replica.generation() }));
      case Op.ZERO:
        return replica.writeZeroes(request.offset, request.length, fua).then(() => ({ value: replica.generation() }));
      case Op.TRIM:
        return replica.trim(request.offset, request.length, fua).then(() => ({ value: replica.generation() }));
      case Op.FLUSH:
        return replica.flush().then(() => ({ value: replica.generation() }));
      case Op.BLOCK_STATUS:
        return replica.blockStatus(request.offset, request.length).then((extents) => {
          const out = Buffer.alloc(extents.length * EXTENT_BYTES);
          extents.forEach((e, i) => {
            const at = i * EXTENT_BYTES;
            out.writeUInt32LE(e.length % 0x100000000, at);
            out.writeUInt32LE(Math.floor(e.length / 0x100000000), at + 4);
            out[at + 8] = e.state === 'data' ? 0 : 1;
          });
          return { payload: out, value: replica.generation() };
        });
      case Op.SNAPSHOT_PREPARE:
        return this.prepare(request.handle, replica, payload);
      case Op.SNAPSHOT_COMMIT:
      case Op.SNAPSHOT_ABANDON:
        return this.settle(request, replica);
      case Op.CHANGED_BLOCKS:
        return replica
          .changedBlocks(parseJson(payload, 'a changed-blocks request') as ReplicaDiffRequest)
          .then((page) => ({ payload: jsonPayload(page), value: replica.generation() }));
      case Op.GENERATION:
        return Promise.resolve({ value: replica.generation() });
      case Op.RECENT_WRITES:
        return replica.recentWrites().then((recent) => ({ payload: jsonPayload(recent), value: replica.generation() }));
      default:
        return Promise.reject(new FerryError('INVALID_ARGUMENT', `op ${request.op} does not take a handle`));
    }
  }

  private async prepare(handle: number, replica: Replica, payload: Buffer): Promise<Served> {
    const body = parseJson(payload, 'a SNAPSHOT_PREPARE body') as { snapshot_id?: unknown; head_id?: unknown } | null;
    const snapshotId = body?.snapshot_id;
    const headId = body?.head_id;
    if (typeof snapshotId !== 'string' || snapshotId.length === 0) throw invalidArgument('snapshot_id', 'required');
    if (headId !== undefined && typeof headId !== 'string') throw invalidArgument('head_id', 'must be a string');
    const staged = await replica.snapshot(snapshotId, headId);
    if (this.closed || !this.handles.has(handle)) {
      staged.abandon();
      throw new FerryError('UNAVAILABLE', `the replica was closed while snapshot ${snapshotId} was being staged`);
    }
    const token = this.nextToken++;
    this.staged.set(token, { handle, staged });
    return { payload: jsonPayload({ token, ops: staged.ops, point: staged.point, head: staged.head }) };
  }

  /** SNAPSHOT_COMMIT or SNAPSHOT_ABANDON: settled synchronously, so the requests after it see the new head. */
  private settle(request: RequestHeader, replica: Replica): Promise<Served> {
    const here = this.staged.get(request.offset);
    if (here === undefined || here.handle !== request.handle) {
      return Promise.reject(new FerryError('NOT_FOUND', `no staged snapshot under token ${request.offset}`));
    }
    this.staged.delete(request.offset);
    if (request.op === Op.SNAPSHOT_COMMIT) here.staged.commit();
    else here.staged.abandon();
    return Promise.resolve({ value: replica.generation() });
  }

  private async closeHandle(handle: number, opened: Opened): Promise<Served> {
    opened.opens -= 1;
    if (opened.opens > 0) return NOTHING;
    this.handles.delete(handle);
    await this.settleStaged(handle, opened.volumeId);
    await this.release(opened);
    return NOTHING;
  }

  private abandonStaged(handle: number): void {
    for (const [token, here] of this.staged) {
      if (here.handle !== handle) continue;
      this.staged.delete(token);
      here.staged.abandon();
    }
  }

  /**
   * Settles by the store the snapshots staged under `handle` whose commit or abandon never came (S4); the next OPEN
   * of the volume's head waits for it.
   */
  private settleStaged(handle: number, volumeId: string): Promise<void> {
    const mine = [...this.staged].filter(([, here]) => here.handle === handle);
    for (const [token] of mine) this.staged.delete(token);
    if (mine.length === 0) return Promise.resolve();
    const settle = async (staged: ReplicaSnapshot): Promise<void> => {
      const lost = staged.lost;
      if (lost === undefined) {
        staged.abandon();
        return;
      }
      for (let attempt = 0; ; attempt++) {
        try {
          await lost.call(staged);
          return;
        } catch (err: unknown) {
          if (attempt >= 7) {
            this.log?.('replication.unsettled', { peer: this.peer, volume: volumeId, error: String(err) });
            staged.abandon();
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, Math.min(8000, 250 * 2 ** attempt)));
        }
      }
    };
    const settling = Promise.all(mine.map(([, here]) => settle(here.staged))).then(() => undefined);
    const all = Promise.all([this.shared.settling.get(volumeId), settling]).then(() => undefined);
    this.shared.settling.set(volumeId, all);
    void all.then(() => {
      if (this.shared.settling.get(volumeId) === all) this.shared.settling.delete(volumeId);
    });
    return settling;
  }

  /** Forgets an opened replica and closes it. */
  private async release(opened: Opened): Promise<void> {
    this.byKey.delete(opened.key);
    try {
      await opened.replica.close();
    } catch (err: unknown) {
      this.log?.('replication.close-failed', { peer: this.peer, replica: opened.key, error: String(err) });
    }
  }
}

const FUA = { fua: true };

/** A WRITE's options from its flags: FUA, and UNCACHED (its payload was taken into page-aligned memory). */
function writeOptions(flags: number): WriteOptions | undefined {
  const fua = (flags & FLAG_FUA) !== 0;
  const uncached = (flags & FLAG_UNCACHED) !== 0;
  if (!fua && !uncached) return undefined;
  return { ...(fua && { fua }), ...(uncached && { uncached }) };
}
