/** A worker that encodes migration frames (zstd where it helps) off the node's event loop (encode-pool.ts). */
import { parentPort } from 'node:worker_threads';
import { FrameEncoder } from './frames.js';

/** A range to encode: its offset and bytes (transferred). */
export interface EncodeRequest {
  id: number;
  offset: number;
  data: ArrayBuffer;
}

/** The frame (transferred), or why it could not be made. */
export type EncodeReply = { id: number; frame: ArrayBuffer } | { id: number; error: string };

const encoder = new FrameEncoder();
const port = parentPort;
port?.on('message', (request: EncodeRequest) => {
  try {
    const frame = encoder.encode(request.offset, Buffer.from(request.data));
    const own =
      frame.byteOffset === 0 && frame.buffer.byteLength === frame.length && frame.buffer instanceof ArrayBuffer
        ? frame.buffer
        : new Uint8Array(frame).buffer;
    const reply: EncodeReply = { id: request.id, frame: own };
    port.postMessage(reply, [own]);
  } catch (err: unknown) {
    port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err) } satisfies EncodeReply);
  }
});
