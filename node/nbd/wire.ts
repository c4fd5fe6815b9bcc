/**
 * Encoders for what the server sends. Layouts are in constants.ts; every function returns fresh buffers that the
 * caller writes in one go.
 */
import {
  INFO_BLOCK_SIZE,
  type INFO_DESCRIPTION,
  INFO_EXPORT,
  type INFO_NAME,
  MAX_STRING,
  OPTION_REPLY_MAGIC,
  REPLY_FLAG_DONE,
  REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_ERROR,
  REPLY_TYPE_OFFSET_DATA,
  SIMPLE_REPLY_MAGIC,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_HEADER_SIZE,
  STRUCTURED_REPLY_MAGIC,
} from './constants.js';

/** Writes a 64-bit unsigned number (below 2^53) big-endian. */
export function writeUInt64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x100000000), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

/** Reads a 64-bit unsigned number; values past 2^53 lose precision but stay larger than any export size. */
export function readUInt64(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * 0x100000000 + buf.readUInt32BE(offset + 4);
}

/** UTF-8 bytes of `text`, cut to the protocol's string limit without splitting a character. */
export function protocolString(text: string, limit = MAX_STRING): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= limit) return bytes;
  let end = limit;
  // Step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** An option reply: magic, option, reply type, length, data. */
export function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(20 + data.length);
  out.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  out.writeUInt32BE(option, 8);
  out.writeUInt32BE(type, 12);
  out.writeUInt32BE(data.length, 16);
  data.copy(out, 20);
  return out;
}

/** NBD_REP_SERVER data: name length, name. */
export function serverEntry(name: string): Buffer {
  const bytes = protocolString(name);
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

/** NBD_REP_META_CONTEXT data: context id, name. */
export function metaContextEntry(id: number, name: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(id, 0);
  bytes.copy(out, 4);
  return out;
}

/** NBD_INFO_EXPORT: size and transmission flags. */
export function infoExport(size: number, flags: number): Buffer {
  const out = Buffer.allocUnsafe(12);
  out.writeUInt16BE(INFO_EXPORT, 0);
  writeUInt64(out, size, 2);
  out.writeUInt16BE(flags, 10);
  return out;
}

/** NBD_INFO_NAME or NBD_INFO_DESCRIPTION: a string. */
export function infoString(type: typeof INFO_NAME | typeof INFO_DESCRIPTION, text: string): Buffer {
  const bytes = protocolString(text);
  const out = Buffer.allocUnsafe(2 + bytes.length);
  out.writeUInt16BE(type, 0);
  bytes.copy(out, 2);
  return out;
}

/** NBD_INFO_BLOCK_SIZE: minimum, preferred, maximum. */
export function infoBlockSize(minimum: number, preferred: number, maximum: number): Buffer {
  const out = Buffer.allocUnsafe(14);
  out.writeUInt16BE(INFO_BLOCK_SIZE, 0);
  out.writeUInt32BE(minimum, 2);
  out.writeUInt32BE(preferred, 6);
  out.writeUInt32BE(maximum, 10);
  return out;
}

/** A simple reply header (the read payload, if any, follows separately). */
export function simpleReply(handle: Buffer, error: number): Buffer {
  const out = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
  out.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  out.writeUInt32BE(error, 4);
  handle.copy(out, 8, 0, 8);
  return out;
}

/** A structured chunk header followed by `extra` zeroed bytes for the caller to fill in. */
export function structuredHeader(handle: Buffer, flags: number, type: number, length: number, extra = 0): Buffer {
  const out = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + extra);
  out.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  out.writeUInt16BE(flags, 4);
  out.writeUInt16BE(type, 6);
  handle.copy(out, 8, 0, 8);
  out.writeUInt32BE(length, 16);
  return out;
}

/** Header of a final NBD_REPLY_TYPE_OFFSET_DATA chunk; `length` data bytes follow it. */
export function offsetDataHeader(handle: Buffer, offset: number, length: number): Buffer {
  const out = structuredHeader(handle, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, 8 + length, 8);
  writeUInt64(out, offset, STRUCTURED_HEADER_SIZE);
  return out;
}

/** A final NBD_REPLY_TYPE_ERROR chunk with a message for people. */
export function structuredError(handle: Buffer, error: number, message: string): Buffer {
  const text = protocolString(message);
  const out = structuredHeader(handle, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, 6 + text.length, 6 + text.length);
  out.writeUInt32BE(error, STRUCTURED_HEADER_SIZE);
  out.writeUInt16BE(text.length, STRUCTURED_HEADER_SIZE + 4);
  text.copy(out, STRUCTURED_HEADER_SIZE + 6);
  return out;
}

/** A final NBD_REPLY_TYPE_BLOCK_STATUS chunk: context id, then (length, flags) descriptors. */
export function blockStatusReply(handle: Buffer, contextId: number, extents: { length: number; flags: number }[]) {
  const payload = 4 + 8 * extents.length;
  const out = structuredHeader(handle, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, payload, payload);
  out.writeUInt32BE(contextId, STRUCTURED_HEADER_SIZE);
  let at = STRUCTURED_HEADER_SIZE + 4;
  for (const extent of extents) {
    out.writeUInt32BE(extent.length, at);
    out.writeUInt32BE(extent.flags, at + 4);
    at += 8;
  }
  return out;
}
