/**
 * NBD_OPT_STARTTLS and the TLS policy at the protocol level, with a raw client for what libnbd never sends
 * (options before TLS on a server that requires it, STARTTLS with data or twice).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryProvider } from '../../test/support/memory-provider.js';
import { infoData, RawClient } from '../../test/support/nbd-raw-client.js';
import { defaultTlsMode, isLoopback, type NbdTlsOptions, plaintextIdentity } from './access.js';
import * as c from './constants.js';
import { NbdServer } from './index.js';

const KEY = Buffer.alloc(32, 7);

describe('NBD_OPT_STARTTLS', () => {
  const servers: NbdServer[] = [];
  const clients: RawClient[] = [];

  async function connect(tls: NbdTlsOptions): Promise<RawClient> {
    const server = new NbdServer(new MemoryProvider(), { tls });
    servers.push(server);
    const { port } = await server.listen('127.0.0.1', 0);
    const raw = await RawClient.connect(port);
    clients.push(raw);
    await raw.greet();
    return raw;
  }

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((raw) => raw.close()));
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  it('in mode require, answers every option but STARTTLS with ERR_TLS_REQD, saying how to connect', async () => {
    const raw = await connect({ mode: 'require', pskKey: () => KEY });
    for (const [option, data] of [
      [c.OPT_LIST, Buffer.alloc(0)],
      [c.OPT_INFO, infoData('disk', [])],
      [c.OPT_GO, infoData('disk', [])],
      [c.OPT_STRUCTURED_REPLY, Buffer.alloc(0)],
    ] as const) {
      raw.sendOption(option, data);
      const reply = await raw.optionReply();
      expect(reply).toMatchObject({ option, type: c.REP_ERR_TLS_REQD });
      expect(reply.data.toString()).toMatch(/requires TLS: connect with nbds:\/\/.*ferry auth nbd-key/);
    }
  });

  it('in mode require, ends the session on NBD_OPT_EXPORT_NAME before TLS (it cannot carry an error)', async () => {
    const raw = await connect({ mode: 'require', pskKey: () => KEY });
    raw.sendOption(c.OPT_EXPORT_NAME, Buffer.from('disk'));
    expect(await raw.closedByServer()).toBe(true);
  });

  it('refuses STARTTLS with data, and without keys or in mode off as unsupported', async () => {
    const withData = await connect({ mode: 'optional', pskKey: () => KEY });
    withData.sendOption(c.OPT_STARTTLS, Buffer.from('x'));
    expect((await withData.optionReply()).type).toBe(c.REP_ERR_INVALID);
    for (const tls of [{ mode: 'off' as const, pskKey: () => KEY }, { mode: 'optional' as const }]) {
      const raw = await connect(tls);
      raw.sendOption(c.OPT_STARTTLS);
      expect((await raw.optionReply()).type).toBe(c.REP_ERR_UNSUP);
    }
  });

  it('drops a connection whose TLS handshake is not TLS', async () => {
    const raw = await connect({ mode: 'optional', pskKey: () => KEY });
    raw.sendOption(c.OPT_STARTTLS);
    expect((await raw.optionReply()).type).toBe(c.REP_ACK);
    raw.sendOption(c.OPT_LIST);
    expect(await raw.closedByServer()).toBe(true);
  });

  it('cannot be built in mode require without keys', () => {
    expect(() => new NbdServer(new MemoryProvider(), { tls: { mode: 'require' } })).toThrow(/needs TLS keys/);
  });
});

describe('plaintext identities', () => {
  it('trusts this host unless TLS is off, and nobody else unless TLS is off', () => {
    expect(plaintextIdentity('optional', '127.0.0.1')).toEqual({ kind: 'local' });
    expect(plaintextIdentity('optional', '::ffff:127.0.0.5')).toEqual({ kind: 'local' });
    expect(plaintextIdentity('require', '::1')).toEqual({ kind: 'local' });
    expect(plaintextIdentity('optional', '192.0.2.7')).toEqual({ kind: 'anonymous' });
    expect(plaintextIdentity('require', '192.0.2.7')).toEqual({ kind: 'anonymous' });
    expect(plaintextIdentity('off', '192.0.2.7')).toEqual({ kind: 'open' });
    expect(plaintextIdentity('optional', undefined)).toEqual({ kind: 'anonymous' });
  });

  it('knows loopback addresses', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) {
      expect(isLoopback(address), address).toBe(true);
    }
    for (const address of ['0.0.0.0', '::', '192.0.2.1', '10.0.0.1', 'example.com', '128.0.0.1']) {
      expect(isLoopback(address), address).toBe(false);
    }
  });

  it('defaults to TLS required off loopback and offered on it', () => {
    expect(defaultTlsMode('127.0.0.1')).toBe('optional');
    expect(defaultTlsMode('::1')).toBe('optional');
    expect(defaultTlsMode('0.0.0.0')).toBe('require');
    expect(defaultTlsMode('192.0.2.2')).toBe('require');
  });
});
