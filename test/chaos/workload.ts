/**
 * The chaos workload (docs/REPLICATION.md section 8): a writer writes self-describing 4 KiB values (test/chaos/
 * value.ts) to blocks of its own region of a volume over NBD, one write at a time, and FLUSHes every few writes. Every
 * write is logged when it is invoked; a write is acknowledged once a FLUSH sent after its reply, on the same
 * connection, is answered (NBD promises no more). When its connection fails (the node died, stopped answering, or
 * refused), the writes not yet covered stay unacknowledged (they may or may not have landed) and the writer connects
 * again: a roaming writer to the next node in turn (any node, retrying), a pinned writer to its first node only, so
 * that it keeps writing through the old attach point while another node takes over (the fencing check).
 */
import { NbdClient } from './nbd-client.js';
import { BLOCK_SIZE, encodeValue } from './value.js';

/** Where a node serves NBD. */
export interface NbdEndpoint {
  /** The node's index in the cluster. */
  index: number;
  host: string;
  port: number;
}

/** One write, as the workload logged it. */
export interface WriteRecord {
  writer: number;
  seq: number;
  block: number;
  /** Index of the node it was sent through. */
  via: number;
  /** When it was sent, ms since the trial began. */
  invokedMs: number;
  /** When its reply came (absent: none came). */
  repliedMs?: number;
  /** When the FLUSH covering it was acknowledged (absent: not acknowledged). */
  ackedMs?: number;
}

/** Options of a Writer. */
export interface WriterOptions {
  volume: string;
  /** The writer's number, written in its values. */
  writer: number;
  /** Its blocks: `first` .. `first + count - 1`. */
  first: number;
  count: number;
  /** Every node's NBD endpoint, by index. */
  endpoints: readonly NbdEndpoint[];
  /** Index of the node it connects to first. */
  startAt: number;
  /** Pinned: it only ever connects to its first node. */
  pinned?: boolean;
  /** Draws blocks (seeded). */
  random: () => number;
  /** Ms since the trial began. */
  clock: () => number;
  /** A FLUSH after this many writes; default 8. */
  flushEvery?: number;
  /** Longest wait for a reply before the connection is given up, ms; default 8000. */
  requestTimeoutMs?: number;
  /** Notes about connections (for the trial's log). */
  note?: (message: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A writer running until stopped. */
export class Writer {
  /** Every write it sent, in order. */
  readonly writes: WriteRecord[] = [];
  /** Each connection it made: to which node, when. */
  readonly connections: { via: number; atMs: number }[] = [];
  private stopped = false;
  private done: Promise<void> | undefined;
  private via: number;
  private seq = 0;
  private current: NbdClient | undefined;

  constructor(private readonly options: WriterOptions) {
    this.via = options.startAt;
  }

  /** Starts writing. */
  start(): void {
    this.done = this.loop();
  }

  /** The node it writes through now (or will try next). */
  get node(): number {
    return this.via;
  }

  /**
   * Stops; a last FLUSH covers what the open connection wrote, if it answers within `graceMs` (default 3000), else the
   * connection is broken off (and what it wrote since its last FLUSH stays unacknowledged).
   */
  async stop(graceMs = 3000): Promise<void> {
    this.stopped = true;
    const timer = setTimeout(() => this.current?.destroy(), graceMs);
    await this.done;
    clearTimeout(timer);
  }

  private async connect(): Promise<NbdClient | undefined> {
    const o = this.options;
    const endpoint = o.endpoints[this.via];
    if (endpoint === undefined) throw new Error(`no endpoint ${this.via}`);
    try {
      const client = await NbdClient.connect({
        host: endpoint.host,
        port: endpoint.port,
        name: o.volume,
        connectTimeoutMs: 3000,
        requestTimeoutMs: o.requestTimeoutMs ?? 8000,
      });
      this.connections.push({ via: this.via, atMs: o.clock() });
      o.note?.(`writer ${o.writer} connected through node ${this.via}`);
      return client;
    } catch (err: unknown) {
      o.note?.(`writer ${o.writer} could not connect through node ${this.via}: ${String(err)}`);
      this.moveOn();
      await sleep(250);
      return undefined;
    }
  }

  private moveOn(): void {
    if (!this.options.pinned) this.via = (this.via + 1) % this.options.endpoints.length;
  }

  private async loop(): Promise<void> {
    const o = this.options;
    const flushEvery = o.flushEvery ?? 8;
    let client: NbdClient | undefined;
    let unflushed: WriteRecord[] = [];
    const flush = async (c: NbdClient): Promise<void> => {
      await c.flush();
      const at = o.clock();
      for (const w of unflushed) w.ackedMs = at;
      unflushed = [];
    };
    while (!this.stopped) {
      client ??= await this.connect();
      this.current = client;
      if (client === undefined) continue;
      const block = o.first + Math.floor(o.random() * o.count);
      const record: WriteRecord = {
        writer: o.writer,
        seq: ++this.seq,
        block,
        via: this.via,
        invokedMs: o.clock(),
      };
      this.writes.push(record);
      try {
        await client.write(
          block * BLOCK_SIZE,
          encodeValue({ volume: o.volume, block, writer: o.writer, seq: record.seq, via: this.via }),
        );
        record.repliedMs = o.clock();
        unflushed.push(record);
        if (unflushed.length >= flushEvery) await flush(client);
      } catch (err: unknown) {
        o.note?.(`writer ${o.writer} lost node ${this.via} at ${o.clock()} ms: ${String(err)}`);
        client.destroy();
        client = undefined;
        unflushed = [];
        this.moveOn();
      }
    }
    if (client !== undefined) {
      await flush(client).catch(() => undefined);
      client.close();
    }
  }
}
