import { describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import {
  decodeReplyHeader,
  decodeRequestHeader,
  encodeReply,
  MAX_PAYLOAD_BYTES,
  Op,
  REPLY_FLAG_STALE_EPOCH,
  REPLY_HEADER_BYTES,
  REQUEST_HEADER_BYTES,
  type RequestHeader,
  replyError,
  StaleEpochError,
  writeRequestHeader,
} from './frame.js';

function encoded(request: Partial<RequestHeader>): Buffer {
  const out = Buffer.alloc(REQUEST_HEADER_BYTES);
  writeRequestHeader(out, 0, {
    op: Op.READ,
    flags: 0,
    id: 1,
    payloadBytes: 0,
    epoch: 1,
    offset: 0,
    length: 0,
    handle: 1,
    ...request,
  });
  return out;
}

describe('replication frames', () => {
  it('lays a request header out little-endian, as docs/REPLICATION.md section 7 says', () => {
    const request: RequestHeader = {
      op: Op.WRITE,
      flags: 1,
      id: 0x01020304,
      payloadBytes: 4096,
      epoch: 2 ** 40 + 5,
      offset: 2 ** 52 + 4096,
      length: 4096,
      handle: 7,
    };
    const raw = encoded(request);
    expect(raw.subarray(0, 4).toString('latin1')).toBe('FRQ2');
    expect([...raw.subarray(4, 12)]).toEqual([Op.WRITE, 1, 0, 0, 4, 3, 2, 1]);
    expect(raw.readUInt32LE(16)).toBe(5);
    expect(raw.readUInt32LE(20)).toBe(2 ** 8);
    expect(raw.readUInt32LE(36)).toBe(7);
    expect(decodeRequestHeader(raw)).toEqual(request);
  });

  it('refuses frames that cannot be right: the connection is then closed', () => {
    const bad = (request: Partial<RequestHeader>, mutate?: (raw: Buffer) => void) => {
      const raw = encoded(request);
      mutate?.(raw);
      return () => decodeRequestHeader(raw);
    };
    expect(bad({}, (raw) => raw.writeUInt32LE(0x31515246, 0))).toThrow(/bad request magic/);
    expect(bad({}, (raw) => raw.writeUInt8(0, 4))).toThrow(/unknown op 0/);
    expect(bad({}, (raw) => raw.writeUInt8(17, 4))).toThrow(/unknown op 17/);
    expect(bad({ op: Op.WRITE, payloadBytes: MAX_PAYLOAD_BYTES + 1, length: MAX_PAYLOAD_BYTES + 1 })).toThrow(
      /payload of/,
    );
    expect(bad({ op: Op.WRITE, payloadBytes: 4096, length: 8192 })).toThrow(/payload and op disagree/);
    expect(bad({ op: Op.READ, payloadBytes: 10 })).toThrow(/payload and op disagree/);
    expect(bad({ op: Op.READ, length: MAX_PAYLOAD_BYTES + 1 })).toThrow(/read of/);
    expect(bad({}, (raw) => raw.writeUInt32LE(0x200000, 28))).toThrow(/beyond 2\^53/);
    expect(bad({ op: Op.OPEN, payloadBytes: 40, handle: 0 })).not.toThrow();
    let caught: unknown;
    try {
      bad({}, (raw) => raw.writeUInt8(99, 4))();
    } catch (err: unknown) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'DATA_CORRUPTION' });
  });

  it('round-trips replies: OK with a value, errors with their code, stale epochs with the epoch held', () => {
    const ok = encodeReply(9, undefined, 4096, 2 ** 45 + 1);
    expect(ok.length).toBe(REPLY_HEADER_BYTES);
    expect(ok.subarray(0, 4).toString('latin1')).toBe('FRP2');
    expect(decodeReplyHeader(ok)).toEqual({
      status: 0,
      flags: 0,
      messageBytes: 0,
      id: 9,
      payloadBytes: 4096,
      value: 2 ** 45 + 1,
    });

    const failed = encodeReply(10, new FerryError('RESOURCE_EXHAUSTED', 'disk full'), 0, 0);
    const header = decodeReplyHeader(failed);
    const message = failed.subarray(REPLY_HEADER_BYTES).toString('utf8');
    expect(message).toBe('disk full');
    const err = replyError(header, message, 'node-b');
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED', message: 'node node-b: disk full' });
    expect(err).not.toBeInstanceOf(StaleEpochError);

    const stale = new StaleEpochError(42, 'stale epoch 41');
    const refused = encodeReply(11, stale, 0, stale.heldEpoch, REPLY_FLAG_STALE_EPOCH);
    const back = replyError(decodeReplyHeader(refused), 'stale epoch 41', 'node-b');
    expect(back).toBeInstanceOf(StaleEpochError);
    expect(back).toMatchObject({ code: 'FAILED_PRECONDITION', heldEpoch: 42 });
  });
});
