/**
 * Worker threads that encode migration frames, so that compression runs beside the event loop that reads the
 * snapshot and feeds the link (a migration is otherwise bound by one core). The compiled .js starts from dist; the
 * .ts source (tests) through tsx's loader, as cloudsnap's chunk workers do.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FerryError } from '../../common/index.js';
import type { EncodeReply, EncodeRequest } from './encode-worker.js';

function startWorker(): Worker {
  const self = import.meta.url;
  const limits = { maxYoungGenerationSizeMb: 4 };
  if (!self.endsWith('.ts')) return new Worker(new URL('./encode-worker.js', self), { resourceLimits: limits });
  const source = new URL('./encode-worker.ts', self).href;
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(boot, { eval: true, resourceLimits: limits });
}

/** An ArrayBuffer holding exactly `buf`, transferable: its own when it has one to itself, else a copy. */
function transferable(buf: Buffer): ArrayBuffer {
  if (buf.byteOffset === 0 && buf.buffer.byteLength === buf.length && buf.buffer instanceof ArrayBuffer) {
    return buf.buffer;
  }
  return new Uint8Array(buf).buffer;
}

interface Slot {
  worker: Worker;
  waiting: Map<number, { resolve: (frame: Buffer) => void; reject: (err: Error) => void }>;
}

export class EncodePool {
  private slots: Slot[] | undefined;
  private next = 0;
  private id = 0;

  /** `size`: workers, default the cores, at most 4 (started on first use). */
  constructor(private readonly size = Math.min(4, Math.max(1, availableParallelism()))) {}

  /** The frame of `data` at `offset`; `data` is handed over (it must not be used afterwards). */
  encode(offset: number, data: Buffer): Promise<Buffer> {
    const slots = this.start();
    const slot = slots[this.next++ % slots.length] as Slot;
    const id = ++this.id;
    return new Promise<Buffer>((resolve, reject) => {
      slot.waiting.set(id, { resolve, reject });
      const buffer = transferable(data);
      const request: EncodeRequest = { id, offset, data: buffer };
      slot.worker.postMessage(request, [buffer]);
    });
  }

  async close(): Promise<void> {
    const slots = this.slots;
    this.slots = undefined;
    for (const s of slots ?? []) await s.worker.terminate();
  }

  private start(): Slot[] {
    if (this.slots !== undefined) return this.slots;
    this.slots = Array.from({ length: this.size }, () => {
      const slot: Slot = { worker: startWorker(), waiting: new Map() };
      slot.worker.unref();
      slot.worker.on('message', (reply: EncodeReply) => {
        const waiter = slot.waiting.get(reply.id);
        slot.waiting.delete(reply.id);
        if ('error' in reply)
          waiter?.reject(new FerryError('INTERNAL', `encoding a migration frame failed: ${reply.error}`));
        else waiter?.resolve(Buffer.from(reply.frame));
      });
      const fail = (err: Error): void => {
        for (const w of slot.waiting.values())
          w.reject(new FerryError('INTERNAL', `a frame encoder stopped: ${err.message}`));
        slot.waiting.clear();
        this.slots = undefined;
      };
      slot.worker.on('error', fail);
      slot.worker.on('exit', (code) => {
        if (slot.waiting.size > 0) fail(new Error(`exit ${code}`));
      });
      return slot;
    });
    return this.slots;
  }
}
