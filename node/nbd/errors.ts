import { isFerryError } from '../../common/index.js';
import {
  EINVAL,
  EIO,
  ENOSPC,
  EPERM,
  REP_ERR_INVALID,
  REP_ERR_POLICY,
  REP_ERR_SHUTDOWN,
  REP_ERR_UNKNOWN,
} from './constants.js';

/** A failed request: the NBD error value and a message for the client's user. */
export class NbdRequestError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'NbdRequestError';
  }
}

/**
 * NBD error value for an engine failure: INVALID_ARGUMENT->EINVAL, PERMISSION_DENIED->EPERM, RESOURCE_EXHAUSTED->ENOSPC
 * (a full data directory among others), a file system's ENOSPC/EDQUOT->ENOSPC, else EIO.
 */
export function errnoFor(err: unknown): number {
  if (err instanceof NbdRequestError) return err.errno;
  if (!isFerryError(err)) return isNoSpaceCode(err) ? ENOSPC : EIO;
  switch (err.code) {
    case 'INVALID_ARGUMENT':
      return EINVAL;
    case 'PERMISSION_DENIED':
      return EPERM;
    case 'RESOURCE_EXHAUSTED':
      return ENOSPC;
    default:
      return EIO;
  }
}

/**
 * Option reply error for a failure to find or open an export. NOT_FOUND is NBD_REP_ERR_UNKNOWN; refusals (a second
 * writer, permissions) are NBD_REP_ERR_POLICY; the spec has no generic "server failed" reply, so other failures are
 * POLICY too, always with the reason as the message.
 */
export function optionErrorFor(err: unknown, shuttingDown: boolean): number {
  if (shuttingDown) return REP_ERR_SHUTDOWN;
  if (err instanceof NbdRefusal) return err.reply;
  if (!isFerryError(err)) return REP_ERR_POLICY;
  switch (err.code) {
    case 'NOT_FOUND':
      return REP_ERR_UNKNOWN;
    case 'INVALID_ARGUMENT':
      return REP_ERR_INVALID;
    default:
      return REP_ERR_POLICY;
  }
}

function isNoSpaceCode(err: unknown): boolean {
  if (typeof err !== 'object' || err === null || !('code' in err)) return false;
  return err.code === 'ENOSPC' || err.code === 'EDQUOT';
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A refusal during the handshake with its own option reply type (e.g. NBD_REP_ERR_TLS_REQD) and message. */
export class NbdRefusal extends Error {
  constructor(
    readonly reply: number,
    message: string,
  ) {
    super(message);
    this.name = 'NbdRefusal';
  }
}
