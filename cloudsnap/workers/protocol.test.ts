import { expect, it } from 'vitest';
import { ownReply, ownRequest, type WorkerReply, type WorkerRequest } from './protocol.js';

// Copies into literals must carry every field: a field added to a message and left out there would vanish silently.
it('copies every field of every request and reply', () => {
  const shared = new SharedArrayBuffer(16);
  const requests: WorkerRequest[] = [
    { type: 'hash', batch: 1, idKey: new Uint8Array(32), length: 16, chunkSize: 8, shared },
    { type: 'compress', batch: 2, shared, length: 16, chunkSize: 8, chunks: [0, 1], out: shared, outOffset: 4 },
    {
      type: 'decode',
      batch: 3,
      idKey: new Uint8Array(32),
      key: new Uint8Array(32),
      data: new ArrayBuffer(8),
      dataOffset: 1,
      dataLength: 7,
      spans: new Uint32Array([0, 7, 9]),
      ids: new Uint8Array(32),
      where: 'in pack p',
      out: shared,
      outOffset: 0,
      capacity: 16,
    },
    { type: 'collect' },
  ];
  for (const r of requests) expect(ownRequest(r)).toStrictEqual(r);
  const replies: WorkerReply[] = [
    { type: 'hashed', batch: 1, zero: new Uint8Array(2), ids: new Uint8Array(64) },
    { type: 'compressed', batch: 2, lengths: [3, 4] },
    { type: 'decoded', batch: 3, lengths: [7] },
    { type: 'error', batch: 4, message: 'bad', corrupt: true },
  ];
  for (const r of replies) expect(ownReply(r)).toStrictEqual(r);
});
