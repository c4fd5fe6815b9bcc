import { connect, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isNetworkErrorCode, NETWORK_ERROR_CODES, networkErrorCode } from './network-errors.js';

/** Every code the three copies this replaces recognised (object stores, Vault, AWS KMS). */
const RECOGNISED = [
  // cloudsnap/store (S3, Azure Blob, Google Cloud Storage), AWS KMS and Vault alike.
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  // Vault's (axios under node-vault).
  'ECONNABORTED',
  'ERR_NETWORK',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
];

/** Codes a server or the file system answers with: not about reaching anything. */
const NOT_NETWORK = ['ENOENT', 'EACCES', 'ENOSPC', 'NoSuchKey', 'AccessDeniedException', 'REQUEST_SEND_ERROR', ''];

describe('network errors', () => {
  it('recognises every code the object stores, Vault and AWS KMS each recognised, and nothing else', () => {
    for (const code of RECOGNISED) expect(isNetworkErrorCode(code), code).toBe(true);
    expect([...NETWORK_ERROR_CODES].sort()).toEqual([...RECOGNISED].sort());
    for (const code of NOT_NETWORK) expect(isNetworkErrorCode(code), code).toBe(false);
    expect(isNetworkErrorCode(undefined)).toBe(false);
  });

  it('reads the code of what was thrown, and nothing from what has no string code', () => {
    expect(networkErrorCode(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe('ECONNRESET');
    expect(networkErrorCode({ code: 'ERR_NETWORK' })).toBe('ERR_NETWORK');
    expect(networkErrorCode(Object.assign(new Error('missing'), { code: 'ENOENT' }))).toBeUndefined();
    expect(networkErrorCode({ code: 111 })).toBeUndefined();
    expect(networkErrorCode(new Error('no code'))).toBeUndefined();
    expect(networkErrorCode('ECONNREFUSED')).toBeUndefined();
    expect(networkErrorCode(null)).toBeUndefined();
  });

  it('recognises what Node throws for a refused connection', async () => {
    // A loopback port a server listened on and let go: the kernel refuses at once.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const err = await new Promise<unknown>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: address.port });
      socket.on('error', resolve);
      socket.on('connect', () => {
        socket.destroy();
        resolve(undefined);
      });
    });
    expect(networkErrorCode(err)).toBe('ECONNREFUSED');
  });
});
