import {
  FLAG_HAS_FLAGS,
  FLAG_READ_ONLY,
  FLAG_SEND_CACHE,
  FLAG_SEND_DF,
  FLAG_SEND_FAST_ZERO,
  FLAG_SEND_FLUSH,
  FLAG_SEND_FUA,
  FLAG_SEND_TRIM,
  FLAG_SEND_WRITE_ZEROES,
} from './constants.js';

/** What the handshake tells a client about an export, from describeExport or an opened device. */
export interface ExportShape {
  size: number;
  readOnly: boolean;
  blockSize: number;
}

/**
 * Transmission flags. CAN_MULTI_CONN is never set: a volume has one writer, so a second connection could not share
 * its cache. Write-side features are only advertised for writable exports; SEND_DF only with structured replies.
 */
export function transmissionFlags(shape: ExportShape, structured: boolean): number {
  let flags = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_SEND_CACHE;
  if (shape.readOnly) flags |= FLAG_READ_ONLY;
  else flags |= FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES | FLAG_SEND_FAST_ZERO;
  if (structured) flags |= FLAG_SEND_DF;
  return flags;
}

/**
 * NBD_INFO_BLOCK_SIZE values. The engine accepts any alignment, so the minimum is 1; the preferred size is the
 * device's block when it is a power of two of at least 512 (as the spec requires), else 4096; the maximum is the
 * largest request payload the server accepts.
 */
export function blockSizes(
  shape: ExportShape,
  maxPayload: number,
): { minimum: number; preferred: number; maximum: number } {
  const b = shape.blockSize;
  const preferred = Number.isInteger(b) && b >= 512 && b <= 0x80000000 && (b & (b - 1)) === 0 ? b : 4096;
  return { minimum: 1, preferred, maximum: Math.max(maxPayload, preferred) };
}

export function describe(name: string, shape: ExportShape): string {
  const kind = name.includes('@') ? 'Ferry snapshot' : 'Ferry volume';
  return `${kind} ${name}${shape.readOnly ? ' (read-only)' : ''}`;
}
