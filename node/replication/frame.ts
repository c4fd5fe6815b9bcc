/**
 * The replication wire format: binary frames over one mutually authenticated TLS connection, pipelined (a client
 * sends requests without waiting; the server answers each when it is done, in any order, matched by request id).
 * All integers are big-endian.
 *
 * Request: a 40-byte header, the volume id, then the payload (WRITE's data; empty otherwise).
 *
 *   off size field
 *     0   4  magic         0x46525131 ("FRQ1")
 *     4   1  op            1 WRITE, 2 ZERO, 3 TRIM, 4 FLUSH, 5 READ, 6 PING
 *     5   1  flags         bit 0: FUA (WRITE, ZERO, TRIM); other bits 0
 *     6   2  volume length bytes of the UTF-8 volume id that follows the header (0 for PING), at most 255
 *     8   4  id            request id chosen by the client (unique among its requests in flight; never 0)
 *    12   4  payload       bytes of payload after the volume id (WRITE: the data; others: 0)
 *    16   8  epoch         the sender's epoch of the volume (a server refuses one older than it holds)
 *    24   8  offset        byte offset in the volume (WRITE, ZERO, TRIM, READ)
 *    32   4  length        bytes (ZERO, TRIM, READ); WRITE: equals payload; others: 0
 *    36   4  reserved      0
 *
 * Reply: a 16-byte header, the message, then the payload (READ's data when status is OK; empty otherwise).
 *
 *   off size field
 *     0   4  magic         0x46525031 ("FRP1")
 *     4   1  status        0 OK, else a FerryError code (STATUS_CODES below)
 *     5   1  reserved      0
 *     6   2  message       bytes of the UTF-8 error message that follows the header (0 when OK)
 *     8   4  id            the request's id; 0: the connection is refused (the status says why) and will close
 *    12   4  payload       bytes of payload after the message
 *
 * A frame whose magic, op or lengths are wrong ends the connection: the stream cannot be resynchronised.
 */
import { type ErrorCode, FerryError } from '../../common/index.js';

export const REQUEST_MAGIC = 0x46525131;
export const REPLY_MAGIC = 0x46525031;
export const REQUEST_HEADER_BYTES = 40;
export const REPLY_HEADER_BYTES = 16;
export const MAX_VOLUME_ID_BYTES = 255;
/** Largest payload a frame may carry (a WRITE's data or a READ's reply). */
export const MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;

export const Op = { WRITE: 1, ZERO: 2, TRIM: 3, FLUSH: 4, READ: 5, PING: 6 } as const;
export type Op = (typeof Op)[keyof typeof Op];
const OPS: ReadonlySet<number> = new Set(Object.values(Op));

export const FLAG_FUA = 1;

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

export interface RequestHeader {
  op: Op;
  flags: number;
  id: number;
  volumeId: string;
  epoch: number;
  offset: number;
  length: number;
  /** Payload bytes that follow (WRITE's data length). */
  payloadBytes: number;
}

export interface ReplyHeader {
  status: number;
  id: number;
  messageBytes: number;
  payloadBytes: number;
}

/** The header and volume id of a request (the payload is sent after it as is). */
export function encodeRequest(request: RequestHeader): Buffer {
  const volume = Buffer.from(request.volumeId, 'utf8');
  if (volume.length > MAX_VOLUME_ID_BYTES) {
    throw new FerryError('INVALID_ARGUMENT', `volume_id: longer than ${MAX_VOLUME_ID_BYTES} bytes`, {
      field: 'volume_id',
    });
  }
  const out = Buffer.allocUnsafe(REQUEST_HEADER_BYTES + volume.length);
  out.writeUInt32BE(REQUEST_MAGIC, 0);
  out.writeUInt8(request.op, 4);
  out.writeUInt8(request.flags, 5);
  out.writeUInt16BE(volume.length, 6);
  out.writeUInt32BE(request.id, 8);
  out.writeUInt32BE(request.payloadBytes, 12);
  out.writeBigUInt64BE(BigInt(request.epoch), 16);
  out.writeBigUInt64BE(BigInt(request.offset), 24);
  out.writeUInt32BE(request.length, 32);
  out.writeUInt32BE(0, 36);
  volume.copy(out, REQUEST_HEADER_BYTES);
  return out;
}

function protocolError(what: string): FerryError {
  return new FerryError(
    'DATA_CORRUPTION',
    `replication stream: ${what}; the connection is closed (check both nodes run the same Ferry version)`,
  );
}

/** Parses a request header (the first REQUEST_HEADER_BYTES bytes); the volume id is read separately. */
export function decodeRequestHeader(buf: Buffer): Omit<RequestHeader, 'volumeId'> & { volumeBytes: number } {
  if (buf.readUInt32BE(0) !== REQUEST_MAGIC) throw protocolError('bad request magic');
  const op = buf.readUInt8(4);
  if (!OPS.has(op)) throw protocolError(`unknown op ${op}`);
  const payloadBytes = buf.readUInt32BE(12);
  const length = buf.readUInt32BE(32);
  if (payloadBytes > MAX_PAYLOAD_BYTES) throw protocolError(`payload of ${payloadBytes} bytes`);
  if (op === Op.WRITE ? length !== payloadBytes : payloadBytes !== 0) throw protocolError('payload and op disagree');
  if (op === Op.READ && length > MAX_PAYLOAD_BYTES) throw protocolError(`read of ${length} bytes`);
  const epoch = buf.readBigUInt64BE(16);
  const offset = buf.readBigUInt64BE(24);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER) || offset > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw protocolError('epoch or offset beyond 2^53');
  }
  return {
    op: op as Op,
    flags: buf.readUInt8(5),
    volumeBytes: buf.readUInt16BE(6),
    id: buf.readUInt32BE(8),
    payloadBytes,
    epoch: Number(epoch),
    offset: Number(offset),
    length,
  };
}

/** A reply's header and message (the payload, if any, is sent after it as is). */
export function encodeReply(id: number, error: FerryError | undefined, payloadBytes: number): Buffer {
  const message = error === undefined ? Buffer.alloc(0) : Buffer.from(error.message, 'utf8').subarray(0, 0xffff);
  const out = Buffer.allocUnsafe(REPLY_HEADER_BYTES + message.length);
  out.writeUInt32BE(REPLY_MAGIC, 0);
  out.writeUInt8(error === undefined ? 0 : STATUS_CODES[error.code], 4);
  out.writeUInt8(0, 5);
  out.writeUInt16BE(message.length, 6);
  out.writeUInt32BE(id, 8);
  out.writeUInt32BE(payloadBytes, 12);
  message.copy(out, REPLY_HEADER_BYTES);
  return out;
}

export function decodeReplyHeader(buf: Buffer): ReplyHeader {
  if (buf.readUInt32BE(0) !== REPLY_MAGIC) throw protocolError('bad reply magic');
  const payloadBytes = buf.readUInt32BE(12);
  if (payloadBytes > MAX_PAYLOAD_BYTES) throw protocolError(`reply payload of ${payloadBytes} bytes`);
  return {
    status: buf.readUInt8(4),
    messageBytes: buf.readUInt16BE(6),
    id: buf.readUInt32BE(8),
    payloadBytes,
  };
}

/** The FerryError a non-OK reply stands for. */
export function replyError(status: number, message: string, peer: string): FerryError {
  const code = CODE_OF_STATUS.get(status) ?? 'INTERNAL';
  return new FerryError(code, `node ${peer}: ${message || `status ${status}`}`);
}

/** The bytes a request holds while in flight (its header, and the data of a WRITE or of a READ's reply). */
export function requestCost(op: Op, length: number): number {
  return REQUEST_HEADER_BYTES + (op === Op.WRITE || op === Op.READ ? length : 0);
}
