/**
 * NBD over TLS-PSK (NBD_OPT_STARTTLS) against real clients: libnbd's nbdinfo, nbdcopy and nbdsh (GnuTLS), and
 * qemu-img. Keys in GnuTLS psk files (`username:hexkey`); each identity sees and opens only what `authorize` allows.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../common/index.js';
import { NbdServer } from '../node/index.js';
import { MemoryProvider } from './support/memory-provider.js';
import { ok, run } from './support/run.js';

const MiB = 1024 * 1024;
const KEYS = new Map([
  ['alice', randomBytes(32)],
  ['bob', randomBytes(32)],
]);
/** Which exports each identity may open. */
const GRANTS = new Map([
  ['alice', new Set(['disk', 'disk@snap'])],
  ['bob', new Set(['other'])],
]);

describe('NBD over TLS-PSK with real clients', () => {
  let dir: string;
  let provider: MemoryProvider;
  let server: NbdServer;
  let port: number;
  const events: { event: string; fields: Record<string, unknown> }[] = [];

  /** A psk file holding `user`'s key (or `key` instead). */
  async function pskFile(user: string, key: Buffer | undefined = KEYS.get(user)): Promise<string> {
    const path = join(dir, `${user}-${randomBytes(4).toString('hex')}.psk`);
    await writeFile(path, `${user}:${key?.toString('hex')}\n`, { mode: 0o600 });
    return path;
  }

  async function uri(user: string, exportName = '', key?: Buffer): Promise<string> {
    return `nbds://${user}@127.0.0.1:${port}/${exportName}?tls-psk-file=${await pskFile(user, key)}`;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-nbd-tls-'));
    provider = new MemoryProvider({ size: 16 * MiB });
    provider.addVolume('other', 8 * MiB);
    server = new NbdServer(provider, {
      log: (event, fields) => events.push({ event, fields }),
      tls: { mode: 'require', pskKey: (identity) => KEYS.get(identity) },
      authorize: async (identity, name, write) => {
        if (GRANTS.get(identity.name)?.has(name)) return;
        throw new FerryError(
          'PERMISSION_DENIED',
          `${identity.name} has no ${write ? 'Write' : 'Read'} access to ${name}`,
        );
      },
    });
    ({ port } = await server.listen('127.0.0.1', 0));
  });

  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('nbdinfo connects with the right key and fails with a wrong one or an unknown user', async () => {
    const info = JSON.parse(await ok('nbdinfo', ['--json', await uri('alice', 'disk')])) as {
      TLS: boolean;
      exports: { 'export-size': number }[];
    };
    expect(info.TLS).toBe(true);
    expect(info.exports[0]?.['export-size']).toBe(16 * MiB);

    const wrong = await run('nbdinfo', [await uri('alice', 'disk', randomBytes(32))]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/gnutls|TLS/i);
    const stranger = await run('nbdinfo', [await uri('mallory', 'disk', randomBytes(32))]);
    expect(stranger.code).not.toBe(0);
    const copy = await run('nbdcopy', [await uri('alice', 'disk', randomBytes(32)), join(dir, 'never.img')]);
    expect(copy.code).not.toBe(0);
    expect(copy.stderr).toMatch(/gnutls|TLS/i);
    const connect = `h.set_uri_allow_local_file(True)\nh.connect_uri(${JSON.stringify(await uri('alice', 'disk', randomBytes(32)))})`;
    const nbdsh = await run('nbdsh', ['-c', connect]);
    expect(nbdsh.code).not.toBe(0);
    expect(nbdsh.stderr).toMatch(/gnutls|TLS/i);
    expect(events.some((e) => e.event === 'nbd.tls.failed')).toBe(true);
  });

  it('refuses plaintext when TLS is required, saying how to connect', async () => {
    const plain = await run('nbdinfo', [`nbd://127.0.0.1:${port}/disk`], { ...process.env, LIBNBD_DEBUG: '1' });
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/requires TLS/);
    expect(plain.stderr).toMatch(/server error message: this server requires TLS: connect with nbds:/);
    const list = await run('nbdinfo', ['--list', `nbd://127.0.0.1:${port}`]);
    expect(list.code).not.toBe(0);
    expect(list.stdout).not.toMatch(/disk|other/);
  });

  it('lists only the exports of the connecting identity', async () => {
    const names = async (user: string): Promise<string[]> => {
      const listing = JSON.parse(await ok('nbdinfo', ['--list', '--json', await uri(user)])) as {
        exports: { 'export-name': string }[];
      };
      return listing.exports.map((e) => e['export-name']).sort();
    };
    expect(await names('alice')).toEqual(['disk', 'disk@snap']);
    expect(await names('bob')).toEqual(['other']);
  });

  it("refuses another identity's export with the reason", async () => {
    const denied = await run('nbdinfo', [await uri('alice', 'other')], { ...process.env, LIBNBD_DEBUG: '1' });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/server error message: alice has no Write access to other/);
    const qemu = await run('qemu-img', ['info', ...(await qemuTls('alice', 'other'))]);
    expect(qemu.code).not.toBe(0);
    expect(qemu.stderr).toMatch(/alice has no Write access to other/);
  });

  /** qemu-img arguments for export `name` over TLS-PSK as `user` (qemu reads `keys.psk` in a directory). */
  async function qemuTls(user: string, name: string): Promise<string[]> {
    const keyDir = await mkdtemp(join(dir, 'qemu-'));
    await writeFile(join(keyDir, 'keys.psk'), await readFile(await pskFile(user)), { mode: 0o600 });
    return [
      '--object',
      `tls-creds-psk,id=tls0,endpoint=client,dir=${keyDir},username=${user}`,
      '--image-opts',
      `driver=nbd,host=127.0.0.1,port=${port},export=${name},tls-creds=tls0`,
    ];
  }

  it('nbdcopy writes and reads back bit-identical over TLS; nbdsh and qemu-img read it', async () => {
    const source = join(dir, 'source.img');
    const back = join(dir, 'back.img');
    const data = randomBytes(16 * MiB);
    await writeFile(source, data);
    await ok('nbdcopy', [source, await uri('alice', 'disk')]);
    await ok('nbdcopy', [await uri('alice', 'disk'), back]);
    expect((await readFile(back)).equals(data)).toBe(true);

    // nbdsh -u refuses URIs that name local files; the handle allows them when asked.
    const connect = `h.set_uri_allow_local_file(True)\nh.connect_uri(${JSON.stringify(await uri('alice', 'disk'))})`;
    const script = `${connect}\nprint(h.pread(16, 4096).hex())\nprint(h.get_tls_negotiated())`;
    const out = await ok('nbdsh', ['-c', script]);
    expect(out.trim().split('\n')).toEqual([data.subarray(4096, 4096 + 16).toString('hex'), 'True']);

    const qemuOut = join(dir, 'qemu.img');
    await ok('qemu-img', ['convert', '-O', 'raw', ...(await qemuTls('alice', 'disk')), qemuOut]);
    expect((await readFile(qemuOut)).equals(data)).toBe(true);
  });

  it('logs the identity of each TLS connection and never a key', async () => {
    const established = events.filter((e) => e.event === 'nbd.tls.established');
    expect(established.map((e) => e.fields.identity)).toContain('alice');
    const text = JSON.stringify(events);
    for (const key of KEYS.values()) expect(text).not.toContain(key.toString('hex'));
  });
});

/** This host's first non-loopback IPv4 address: a client connecting to it is not on loopback. */
function externalAddress(): string {
  const found = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal);
  if (found === undefined) throw new Error('this test needs a non-loopback IPv4 address on this host');
  return found.address;
}

describe('NBD TLS mode optional on every address', () => {
  let dir: string;
  let server: NbdServer;
  let port: number;
  const external = externalAddress();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-nbd-tls-optional-'));
    const provider = new MemoryProvider({ size: 4 * MiB });
    provider.addVolume('other', 4 * MiB);
    server = new NbdServer(provider, {
      tls: { mode: 'optional', pskKey: (identity) => KEYS.get(identity) },
      authorize: async (identity, name) => {
        if (!GRANTS.get(identity.name)?.has(name)) throw new FerryError('PERMISSION_DENIED', 'not yours');
      },
    });
    ({ port } = await server.listen('0.0.0.0', 0));
  });

  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function listing(uri: string): Promise<string[]> {
    const out = JSON.parse(await ok('nbdinfo', ['--list', '--json', uri])) as { exports: { 'export-name': string }[] };
    return out.exports.map((e) => e['export-name']).sort();
  }

  it('trusts plaintext from this host, refuses it from another address, and serves TLS there', async () => {
    expect(await listing(`nbd://127.0.0.1:${port}`)).toEqual(['disk', 'disk@snap', 'other']);

    const remote = await run('nbdinfo', [`nbd://${external}:${port}/disk`], { ...process.env, LIBNBD_DEBUG: '1' });
    expect(remote.code).not.toBe(0);
    expect(remote.stderr).toMatch(/server requires TLS/);
    const remoteList = await run('nbdinfo', ['--list', `nbd://${external}:${port}`]);
    expect(remoteList.code).not.toBe(0);

    const psk = join(dir, 'bob.psk');
    await writeFile(psk, `bob:${KEYS.get('bob')?.toString('hex')}\n`, { mode: 0o600 });
    expect(await listing(`nbds://bob@${external}:${port}/?tls-psk-file=${psk}`)).toEqual(['other']);
  });
});
