/**
 * What a failed call to Vault was, read from whatever node-vault (axios underneath) threw: an HTTP answer with
 * Vault's `{"errors":[...]}`, or no answer at all. The causes kept on FerryErrors are rebuilt from these facts only,
 * because axios errors carry the request (the token header, the base64 plaintext) with them.
 */
import { FerryError, networkErrorCode } from '../common/index.js';
import { wrappedKeyMismatch } from './context.js';

/** A failed Vault call, without anything from the request. */
export type VaultFailure =
  | { kind: 'http'; status: number; errors: string[] }
  | { kind: 'network'; code: string }
  | { kind: 'other'; message: string };

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

/** Classifies what node-vault threw. */
export function vaultFailure(err: unknown): VaultFailure {
  const e = record(err);
  const response = record(e?.response);
  if (response !== undefined && typeof response.statusCode === 'number') {
    const body = record(response.body);
    const list = Array.isArray(body?.errors) ? body.errors : [];
    return { kind: 'http', status: response.statusCode, errors: list.map(String) };
  }
  const network = networkErrorCode(err);
  if (network !== undefined) return { kind: 'network', code: network };
  return { kind: 'other', message: err instanceof Error ? err.message : String(err) };
}

/** A plain Error describing the failure, safe to keep as a FerryError's cause. */
export function failureCause(failure: VaultFailure): Error {
  if (failure.kind === 'http') return new Error(`Vault answered ${failure.status}: ${failure.errors.join('; ')}`);
  if (failure.kind === 'network') return new Error(`no answer from Vault (${failure.code})`);
  return new Error(failure.message);
}

/** UNAVAILABLE naming Vault and its address, or undefined when the failure is not about reaching Vault. */
export function unavailable(failure: VaultFailure, endpoint: string): FerryError | undefined {
  const cause = failureCause(failure);
  if (failure.kind === 'network') {
    return new FerryError(
      'UNAVAILABLE',
      `Vault at ${endpoint} is unreachable (${failure.code}): check the address and that Vault is running`,
      { cause },
    );
  }
  if (failure.kind === 'http' && (failure.status >= 500 || failure.status === 429 || failure.status === 412)) {
    const why = failure.status === 503 ? 'sealed or in maintenance' : failure.errors.join('; ') || 'server error';
    return new FerryError('UNAVAILABLE', `Vault at ${endpoint} is unavailable (${failure.status}: ${why})`, {
      cause,
    });
  }
  return undefined;
}

/** What a Transit call was about, for messages. */
export interface TransitCall {
  kek: string;
  /** The Transit operation: 'keys', 'encrypt', 'decrypt', 'rewrap', 'datakey'. */
  op: string;
  endpoint: string;
  mount: string;
  namespace: string;
}

function where(call: TransitCall): string {
  const ns = call.namespace === '' ? '' : `, namespace "${call.namespace}"`;
  return `Vault at ${call.endpoint} (mount "${call.mount}"${ns})`;
}

/** NOT_FOUND for a Transit key Vault does not have; deletion is indistinguishable from a wrong name there. */
export function transitKeyMissing(call: TransitCall, cause?: Error): FerryError {
  return new FerryError(
    'NOT_FOUND',
    `${where(call)} has no transit key "${call.kek}": create it with derived=true, or fix the name; ` +
      'if it was deleted, everything wrapped under it is unreadable',
    { cause },
  );
}

/** The FerryError for a failed Transit call. */
export function transitError(err: unknown, call: TransitCall): FerryError {
  const failure = vaultFailure(err);
  const down = unavailable(failure, call.endpoint);
  if (down !== undefined) return down;
  const cause = failureCause(failure);
  if (failure.kind !== 'http') {
    return new FerryError('INTERNAL', `Vault call ${call.op} for transit key "${call.kek}" failed`, { cause });
  }
  const text = failure.errors.join('; ');
  if (failure.status === 403) {
    return new FerryError(
      'PERMISSION_DENIED',
      `Vault denied access to transit key "${call.kek}" (${call.op}): check the policy of the token (${where(call)})`,
      { cause },
    );
  }
  if (failure.status === 404 || text.includes('encryption key not found')) return transitKeyMissing(call, cause);
  if (text.includes('disallowed by policy')) {
    return new FerryError(
      'PERMISSION_DENIED',
      `the version of transit key "${call.kek}" this key was wrapped with is retired in Vault ` +
        '(below min_decryption_version): data wrapped under it is unreadable',
      { cause },
    );
  }
  if (failure.status === 400 && (call.op === 'decrypt' || call.op === 'rewrap')) {
    return wrappedKeyMismatch(cause);
  }
  return new FerryError('FAILED_PRECONDITION', `Vault refused ${call.op} with transit key "${call.kek}": ${text}`, {
    cause,
  });
}
