/**
 * Executes one transmission request against the device and encodes its successful reply. Failures are thrown
 * (NbdRequestError for protocol-level refusals, engine errors as they come) and turned into error replies by the
 * caller.
 */
import type { BlockDevice, StatusExtent } from '../engine/types.js';
import * as c from './constants.js';
import { NbdRequestError } from './errors.js';
import * as wire from './wire.js';

export interface Request {
  type: number;
  flags: number;
  /** The 8 opaque handle bytes (a view of the request header). */
  handle: Buffer;
  offset: number;
  length: number;
  /** NBD_CMD_WRITE data. */
  payload: Buffer | undefined;
}

export interface Session {
  device: BlockDevice;
  structured: boolean;
  baseAllocation: boolean;
  maxPayload: number;
}

/** Most descriptors sent in one block status reply (the spec lets the server answer for less than asked). */
const MAX_EXTENTS = 65_536;
const ZEROS = Buffer.alloc(1024 * 1024);

export const COMMAND_NAMES: Record<number, string> = {
  [c.CMD_READ]: 'read',
  [c.CMD_WRITE]: 'write',
  [c.CMD_DISC]: 'disc',
  [c.CMD_FLUSH]: 'flush',
  [c.CMD_TRIM]: 'trim',
  [c.CMD_CACHE]: 'cache',
  [c.CMD_WRITE_ZEROES]: 'write_zeroes',
  [c.CMD_BLOCK_STATUS]: 'block_status',
};

/** Runs the request; resolves with the buffers of its reply, to be written back to back. */
export async function execute(req: Request, s: Session): Promise<Buffer[]> {
  validate(req, s);
  const { device } = s;
  const fua = (req.flags & c.CMD_FLAG_FUA) !== 0;
  switch (req.type) {
    case c.CMD_READ:
      return read(req, s);
    case c.CMD_WRITE:
      if (req.length > 0) await device.write(req.offset, req.payload as Buffer, { fua });
      break;
    case c.CMD_FLUSH:
      await device.flush();
      break;
    case c.CMD_TRIM:
      if (req.length > 0) await device.trim(req.offset, req.length, { fua });
      break;
    case c.CMD_CACHE:
      // A hint only; the engine has no cache to warm, and success has no effect on semantics.
      break;
    case c.CMD_WRITE_ZEROES:
      await writeZeroes(req, device, fua);
      break;
    case c.CMD_BLOCK_STATUS:
      return [await blockStatus(req, s)];
  }
  return [wire.simpleReply(req.handle, 0)];
}

function allowedFlags(type: number, s: Session): number {
  switch (type) {
    case c.CMD_READ:
      return c.CMD_FLAG_FUA | (s.structured ? c.CMD_FLAG_DF : 0);
    case c.CMD_WRITE_ZEROES:
      return c.CMD_FLAG_FUA | c.CMD_FLAG_NO_HOLE | c.CMD_FLAG_FAST_ZERO;
    case c.CMD_BLOCK_STATUS:
      return c.CMD_FLAG_FUA | c.CMD_FLAG_REQ_ONE;
    default:
      return c.CMD_FLAG_FUA;
  }
}

function validate(req: Request, s: Session): void {
  const name = COMMAND_NAMES[req.type];
  if (name === undefined || req.type === c.CMD_DISC) {
    throw new NbdRequestError(c.EINVAL, `unknown command ${req.type}`);
  }
  const bad = req.flags & ~allowedFlags(req.type, s);
  if (bad !== 0) throw new NbdRequestError(c.EINVAL, `command flags 0x${bad.toString(16)} are not valid for ${name}`);
  const writes = req.type === c.CMD_WRITE || req.type === c.CMD_WRITE_ZEROES || req.type === c.CMD_TRIM;
  if (writes && s.device.readOnly) {
    throw new NbdRequestError(c.EPERM, `export ${s.device.name} is read-only`);
  }
  if (req.type === c.CMD_FLUSH) return;
  if (req.offset + req.length > s.device.size) {
    const errno = req.type === c.CMD_WRITE || req.type === c.CMD_WRITE_ZEROES ? c.ENOSPC : c.EINVAL;
    throw new NbdRequestError(
      errno,
      `${name} of ${req.length} bytes at ${req.offset} is past the end (${s.device.size})`,
    );
  }
  if (req.type === c.CMD_READ && req.length > s.maxPayload) {
    throw new NbdRequestError(c.EINVAL, `read of ${req.length} bytes exceeds the maximum of ${s.maxPayload}`);
  }
  if (req.type === c.CMD_BLOCK_STATUS && !(s.structured && s.baseAllocation)) {
    throw new NbdRequestError(c.EINVAL, 'block status needs the base:allocation meta context');
  }
}

async function read(req: Request, s: Session): Promise<Buffer[]> {
  if (req.length === 0) {
    return s.structured
      ? [wire.structuredHeader(req.handle, c.REPLY_FLAG_DONE, c.REPLY_TYPE_NONE, 0)]
      : [wire.simpleReply(req.handle, 0)];
  }
  const data = await s.device.read(req.offset, req.length);
  if (data.length !== req.length) {
    throw new NbdRequestError(c.EIO, `device returned ${data.length} bytes for a read of ${req.length}`);
  }
  // The whole range is read before anything is sent, so one final OFFSET_DATA chunk (which also satisfies DF) is safe.
  const header = s.structured
    ? wire.offsetDataHeader(req.handle, req.offset, req.length)
    : wire.simpleReply(req.handle, 0);
  return [header, data];
}

async function writeZeroes(req: Request, device: BlockDevice, fua: boolean): Promise<void> {
  const noHole = (req.flags & c.CMD_FLAG_NO_HOLE) !== 0;
  if (noHole && (req.flags & c.CMD_FLAG_FAST_ZERO) !== 0) {
    // Provisioning means writing real zero blocks: no faster than a write, so fail fast as the spec asks.
    throw new NbdRequestError(c.ENOTSUP, 'fast zero is not possible without punching holes');
  }
  if (req.length === 0) return;
  if (!noHole) return device.writeZeroes(req.offset, req.length, { fua });
  // NO_HOLE: the range must stay allocated, so write zero data instead of freeing it.
  for (let done = 0; done < req.length; done += ZEROS.length) {
    const n = Math.min(ZEROS.length, req.length - done);
    await device.write(req.offset + done, ZEROS.subarray(0, n));
  }
  if (fua) await device.flush();
}

async function blockStatus(req: Request, s: Session): Promise<Buffer> {
  if (req.length === 0) throw new NbdRequestError(c.EINVAL, 'block status of 0 bytes');
  const extents = toDescriptors(await s.device.blockStatus(req.offset, req.length), req.length);
  if (extents.length === 0) throw new NbdRequestError(c.EIO, 'the device reported no extents');
  const reqOne = (req.flags & c.CMD_FLAG_REQ_ONE) !== 0;
  return wire.blockStatusReply(req.handle, c.BASE_ALLOCATION_ID, reqOne ? extents.slice(0, 1) : extents);
}

/** Engine extents as base:allocation descriptors: merged, non-empty, within the request. */
function toDescriptors(extents: StatusExtent[], limit: number): { length: number; flags: number }[] {
  const out: { length: number; flags: number }[] = [];
  let covered = 0;
  for (const extent of extents) {
    const length = Math.min(extent.length, limit - covered);
    if (length <= 0) break;
    const flags = extent.state === 'zero' ? c.STATE_HOLE | c.STATE_ZERO : 0;
    const last = out[out.length - 1];
    if (last && last.flags === flags) last.length += length;
    else if (out.length === MAX_EXTENTS) break;
    else out.push({ length, flags });
    covered += length;
  }
  return out;
}
