/**
 * The replication wire format: binary frames over one mutually authenticated TLS connection, pipelined (a client
 * sends requests without waiting; the server answers each when it is done, in any order, matched by request id).
 * All integers are little-endian; 64-bit fields hold integers below 2^53.
 *
 * Request: a 40-byte header, then the payload.
 *
 *   off size field
 *     0   4  magic     0x32515246 ("FRQ2")
 *     4   1  op        Op below
 *     5   1  flags     bit 0: FUA (WRITE, ZERO, TRIM); bit 1: UNCACHED (WRITE: data nobody reads back soon, which
 *                      the server writes past its page cache where it can); other bits 0
 *     6   2  reserved  0
 *     8   4  id        request id chosen by the client (unique among its requests in flight; never 0)
 *    12   4  payload   bytes of payload after the header
 *    16   8  epoch     the sender's epoch of the volume (W5); DROP may send 0 (no tenure: not checked)
 *    24   8  offset    byte offset in the volume (READ, WRITE, ZERO, TRIM, BLOCK_STATUS); the snapshot token
 *                      (SNAPSHOT_COMMIT, SNAPSHOT_ABANDON); else 0
 *    32   4  length    bytes (READ, ZERO, TRIM, BLOCK_STATUS); WRITE: equals payload; else 0
 *    36   4  handle    the replica opened by OPEN on this connection; 0 for OPEN, DROP and PING
 *
 * Payloads: WRITE the data; OPEN `{"volume_id","snapshot_id"?}`, SNAPSHOT_PREPARE `{"snapshot_id","head_id"?}`,
 * CHANGED_BLOCKS a ReplicaDiffRequest, DROP `{"volume_id"}`, all JSON (small, off the data path); others none.
 *
 * Reply: a 24-byte header, the UTF-8 error message, then the payload.
 *
 *   off size field
 *     0   4  magic     0x32505246 ("FRP2")
 *     4   1  status    0 OK, else a FerryError code (STATUS_CODES below)
 *     5   1  flags     bit 0: STALE_EPOCH (status FAILED_PRECONDITION; `value` is the epoch the server holds)
 *     6   2  message   bytes of the error message after the header (0 when OK)
 *     8   4  id        the request's id; 0: the connection is refused (the status says why) and will close
 *    12   4  payload   bytes of payload after the message
 *    16   8  value     the replica's generation after the request (every OK reply to a request on a handle);
 *                      the epoch held (STALE_EPOCH); else 0
 *
 * Reply payloads: READ the data; BLOCK_STATUS 12 bytes per extent (u64 length, u8 state 0 data / 1 zero, 3
 * reserved); OPEN `{"handle","generation"}`, SNAPSHOT_PREPARE `{"token","ops","point","head"}`, CHANGED_BLOCKS a
 * ChangedBlocksPage, RECENT_WRITES `{"complete","ranges"}` (RecentWrites), JSON; others none.
 *
 * A frame whose magic, op or lengths are wrong ends the connection: the stream cannot be resynchronised.
 */
import { type ErrorCode, FerryError } from '../../common/index.js';
import { StaleEpochError } from '../engine/replica.js';

export { StaleEpochError };

export const REQUEST_MAGIC = 0x32515246;
export const REPLY_MAGIC = 0x32505246;
export const REQUEST_HEADER_BYTES = 40;
export const REPLY_HEADER_BYTES = 24;
/** Largest payload a frame may carry (a WRITE's data, a READ's reply, a JSON body). */
export const MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;
/** Bytes per extent in a BLOCK_STATUS reply. */
export const EXTENT_BYTES = 12;

export const Op = {
  OPEN: 1,
  READ: 2,
  WRITE: 3,
  ZERO: 4,
  TRIM: 5,
  FLUSH: 6,
  BLOCK_STATUS: 7,
  SNAPSHOT_PREPARE: 8,
  SNAPSHOT_COMMIT: 9,
  SNAPSHOT_ABANDON: 10,
  CHANGED_BLOCKS: 11,
  GENERATION: 12,
  CLOSE: 13,
  DROP: 14,
  PING: 15,
  RECENT_WRITES: 16,
} as const;
export type Op = (typeof Op)[keyof typeof Op];
const OP_COUNT = 16;
/** Ops whose payload is a JSON body. */
const JSON_OPS: ReadonlySet<number> = new Set([Op.OPEN, Op.SNAPSHOT_PREPARE, Op.CHANGED_BLOCKS, Op.DROP]);

export const FLAG_FUA = 1;
export const FLAG_UNCACHED = 2;
export const REPLY_FLAG_STALE_EPOCH = 1;

/** Wire status of each error code; fixed forever (never derived from the order of ERROR_CODES). */
export const STATUS_CODES: Readonly<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 1,
  NOT_FOUND: 2,
  ALREADY_EXISTS: 3,
  FAILED_PRECONDITION: 4,
  RESOURCE_EXHAUSTED: 5,
  UNAUTHENTICATED: 6,
  PERMISSION_DENIED: 7,
  UNAVAILABLE: 8,
  DATA_CORRUPTION: 9,
  INTERNAL: 10,
};
const CODE_OF_STATUS = new Map<number, ErrorCode>(
  Object.entries(STATUS_CODES).map(([code, status]) => [status, code as ErrorCode]),
);

/** A request's header fields. */
export interface RequestHeader {
  op: Op;
  flags: number;
  id: number;
  payloadBytes: number;
  epoch: number;
  offset: number;
  length: number;
  handle: number;
}

export interface ReplyHeader {
  status: number;
  flags: number;
  id: number;
  messageBytes: number;
  payloadBytes: number;
  value: number;
}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % 0x100000000, at);
  buf.writeUInt32LE(Math.floor(value / 0x100000000), at + 4);
}

function readU64(buf: Buffer, at: number): number {
  const high = buf.readUInt32LE(at + 4);
  if (high >= 0x200000) throw protocolError('a 64-bit field beyond 2^53');
  return high * 0x100000000 + buf.readUInt32LE(at);
}

/** Writes a request header into `out` (REQUEST_HEADER_BYTES bytes from `at`). */
export function writeRequestHeader(out: Buffer, at: number, request: RequestHeader): void {
  out.writeUInt32LE(REQUEST_MAGIC, at);
  out[at + 4] = request.op;
  out[at + 5] = request.flags;
  out.writeUInt16LE(0, at + 6);
  out.writeUInt32LE(request.id, at + 8);
  out.writeUInt32LE(request.payloadBytes, at + 12);
  writeU64(out, request.epoch, at + 16);
  writeU64(out, request.offset, at + 24);
  out.writeUInt32LE(request.length, at + 32);
  out.writeUInt32LE(request.handle, at + 36);
}

function protocolError(what: string): FerryError {
  return new FerryError(
    'DATA_CORRUPTION',
    `replication stream: ${what}; the connection is closed (check both nodes run the same Ferry version)`,
  );
}

/** Parses and checks a request header (the first REQUEST_HEADER_BYTES bytes of `buf`). */
export function decodeRequestHeader(buf: Buffer): RequestHeader {
  if (buf.readUInt32LE(0) !== REQUEST_MAGIC) throw protocolError('bad request magic');
  const op = buf[4] as number;
  if (op < 1 || op > OP_COUNT) throw protocolError(`unknown op ${op}`);
  const payloadBytes = buf.readUInt32LE(12);
  const length = buf.readUInt32LE(32);
  if (payloadBytes > MAX_PAYLOAD_BYTES) throw protocolError(`payload of ${payloadBytes} bytes`);
  if (op === Op.WRITE ? length !== payloadBytes : payloadBytes !== 0 && !JSON_OPS.has(op)) {
    throw protocolError('payload and op disagree');
  }
  if (op === Op.READ && length > MAX_PAYLOAD_BYTES) throw protocolError(`read of ${length} bytes`);
  return {
    op: op as Op,
    flags: buf[5] as number,
    id: buf.readUInt32LE(8),
    payloadBytes,
    epoch: readU64(buf, 16),
    offset: readU64(buf, 24),
    length,
    handle: buf.readUInt32LE(36),
  };
}

/** A reply's header and message (the payload, if any, is sent after it as is). */
export function encodeReply(
  id: number,
  error: FerryError | undefined,
  payloadBytes: number,
  value: number,
  flags = 0,
): Buffer {
  const message = error === undefined ? undefined : Buffer.from(error.message, 'utf8').subarray(0, 0xffff);
  const out = Buffer.allocUnsafe(REPLY_HEADER_BYTES + (message?.length ?? 0));
  out.writeUInt32LE(REPLY_MAGIC, 0);
  out[4] = error === undefined ? 0 : STATUS_CODES[error.code];
  out[5] = flags;
  out.writeUInt16LE(message?.length ?? 0, 6);
  out.writeUInt32LE(id, 8);
  out.writeUInt32LE(payloadBytes, 12);
  writeU64(out, value, 16);
  message?.copy(out, REPLY_HEADER_BYTES);
  return out;
}

export function decodeReplyHeader(buf: Buffer): ReplyHeader {
  if (buf.readUInt32LE(0) !== REPLY_MAGIC) throw protocolError('bad reply magic');
  const payloadBytes = buf.readUInt32LE(12);
  if (payloadBytes > MAX_PAYLOAD_BYTES) throw protocolError(`reply payload of ${payloadBytes} bytes`);
  return {
    status: buf[4] as number,
    flags: buf[5] as number,
    messageBytes: buf.readUInt16LE(6),
    id: buf.readUInt32LE(8),
    payloadBytes,
    value: readU64(buf, 16),
  };
}

/** The FerryError a non-OK reply stands for. */
export function replyError(reply: ReplyHeader, message: string, peer: string): FerryError {
  const text = `node ${peer}: ${message || `status ${reply.status}`}`;
  if ((reply.flags & REPLY_FLAG_STALE_EPOCH) !== 0) return new StaleEpochError(reply.value, text);
  return new FerryError(CODE_OF_STATUS.get(reply.status) ?? 'INTERNAL', text);
}

/** The bytes a request holds while in flight: its header and payload, and the data of a READ's reply. */
export function requestCost(op: Op, length: number, payloadBytes: number): number {
  return REQUEST_HEADER_BYTES + payloadBytes + (op === Op.READ ? length : 0);
}

/** A JSON body as a payload. */
export function jsonPayload(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** A JSON payload back as a value (the caller checks its shape). */
export function parseJson(payload: Buffer, what: string): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch (err: unknown) {
    throw new FerryError('DATA_CORRUPTION', `replication stream: ${what} is not valid JSON`, { cause: err });
  }
}
