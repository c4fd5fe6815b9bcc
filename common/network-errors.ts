/**
 * The one answer to "is this a network error": the codes Node (errno), axios (under node-vault) and the AWS SDK put
 * on an error when the server could not be reached or did not answer in time. Every network backend (object stores,
 * Vault, AWS KMS) translates these to UNAVAILABLE.
 */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  // axios's own codes for a request that got no answer.
  'ERR_NETWORK',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** Whether `code` (an error's `code`) means the server could not be reached or did not answer in time. */
export function isNetworkErrorCode(code: string | undefined): code is string {
  return code !== undefined && NETWORK_ERROR_CODES.has(code);
}

/** The network code of what was thrown (its `code`), or undefined when it is not a network failure. */
export function networkErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err) || typeof err.code !== 'string') return undefined;
  return NETWORK_ERROR_CODES.has(err.code) ? err.code : undefined;
}
