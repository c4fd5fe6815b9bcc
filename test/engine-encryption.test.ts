/**
 * Encrypted volumes end to end: the real engine with data keys from the node's default keyring (kms/volume-keys.ts),
 * behind the real NBD server, driven by nbdcopy, nbdsh, nbdinfo and qemu-img; then kill -9 of a process writing to
 * an encrypted volume and one merging its layers.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type InspectView } from '../api/index.js';
import { KeyProviders, type LocalKeyring, openDefaultKeyring, volumeKeys } from '../kms/index.js';
import { type BlockDevice, NbdServer, openEngine, type VolumeEngine } from '../node/index.js';
import { requestJson } from './support/app-request.js';
import { ok, run, TOOL_ENV } from './support/run.js';

const MiB = 1024 * 1024;
const SIZE = 128 * MiB;
const MARKER = Buffer.from('ferry plaintext marker, never on disk in the clear. ');
const DATA: [number, number][] = [
  [0, 2 * MiB],
  [40 * MiB + 8192 + 100, 300 * 1024],
  [100 * MiB, 5 * MiB],
  [SIZE - 64 * 1024, 64 * 1024],
];

async function openNode(dataDir: string): Promise<{ engine: VolumeEngine; keyring: LocalKeyring }> {
  const keyring = await openDefaultKeyring(dataDir);
  const keys = volumeKeys({ providers: new KeyProviders([keyring]).lookup });
  return { engine: await openEngine({ dataDir, keys }), keyring };
}

async function layerFiles(dataDir: string): Promise<Buffer[]> {
  const dir = join(dataDir, 'layers');
  return Promise.all((await readdir(dir)).map((f) => readFile(join(dir, f))));
}

describe('encrypted volumes over NBD with real clients', () => {
  let dir: string;
  let node: string;
  let engine: VolumeEngine;
  let keyring: LocalKeyring;
  let server: NbdServer;
  let base: string;
  let source: string;
  const events: { event: string; fields: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-xts-e2e-'));
    node = join(dir, 'node');
    ({ engine, keyring } = await openNode(node));
    server = new NbdServer(engine, { log: (event, fields) => events.push({ event, fields }) });
    const { port } = await server.listen('127.0.0.1', 0);
    base = `nbd://127.0.0.1:${port}`;
    source = join(dir, 'source.raw');
    const f = await open(source, 'w');
    await f.truncate(SIZE);
    for (const [off, len] of DATA) {
      const data = randomBytes(len);
      for (let at = 0; at + MARKER.length <= len; at += 4096) MARKER.copy(data, at);
      await f.write(data, 0, len, off);
    }
    await f.close();
    await engine.createVolume({ name: 'vol', size: SIZE, encrypted: true });
  });

  afterAll(async () => {
    await server.close();
    await engine.close();
    await keyring.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('nbdcopy in, qemu-img compare and nbdcopy out bit-identical; holes stay holes; no plaintext on disk', async () => {
    await ok('nbdcopy', [source, `${base}/vol`]);
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/vol`]);
    const back = join(dir, 'back.raw');
    await ok('nbdcopy', [`${base}/vol`, back]);
    expect((await readFile(back)).equals(await readFile(source))).toBe(true);
    const info = await engine.inspectVolume('vol');
    const aligned = DATA.reduce((n, [o, l]) => n + Math.ceil((o + l) / 4096) * 4096 - Math.floor(o / 4096) * 4096, 0);
    expect(info.bytes_used).toBe(aligned);
    expect(info.encrypted).toBe(true);
    const files = await layerFiles(node);
    expect(files.length).toBeGreaterThan(0);
    expect(files.some((f) => f.includes(MARKER))).toBe(false);
    expect((await readFile(source)).includes(MARKER)).toBe(true);
  });

  it('snapshot, partial writes, trim and zero through nbdsh, clone, merge: all read back as the model says', async () => {
    await engine.createSnapshot('vol', { name: 's1' });
    await ok('nbdsh', [
      '-u',
      `${base}/vol`,
      '-c',
      'h.pwrite(b"\\x07" * 5000, 64 * 1048576 + 333); h.pwrite(b"\\x09" * 10, 100); h.trim(1048576, 0); ' +
        'h.zero(1048576, 100 * 1048576 + 4096); h.flush()',
    ]);
    const model = Buffer.from(await readFile(source));
    model.fill(9, 100, 110);
    model.fill(0, 0, MiB);
    model.fill(7, 64 * MiB + 333, 64 * MiB + 333 + 5000);
    model.fill(0, 100 * MiB + 4096, 101 * MiB + 4096);
    await engine.cloneVolume({ parent_id: 'vol@s1', name: 'copy' });
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/vol@s1`]);
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/copy`]);
    const live = join(dir, 'live.raw');
    await ok('qemu-img', ['convert', '-O', 'raw', `${base}/vol`, live]);
    expect((await readFile(live)).equals(model)).toBe(true);
    // Deleting the snapshot merges its layer: the clone keeps it (two children), the live volume reads the same.
    await engine.deleteSnapshot('vol@s1');
    await engine.createSnapshot('vol', { name: 's2' });
    await engine.deleteSnapshot('vol@s2');
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/copy`]);
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', live, `${base}/vol`]);
  });

  it('a volume whose KEK was destroyed is refused to NBD clients, with the KEK named; others still serve', async () => {
    await keyring.createKek('doomed');
    await engine.createVolume({ name: 'gone', size: MiB, encrypted: true, labels: { 'ferry.io/kek': 'doomed' } });
    await ok('nbdsh', ['-u', `${base}/gone`, '-c', 'h.pwrite(b"\\x05" * 4096, 0); h.flush()']);
    await keyring.destroyKek('doomed');
    const refused = await run('nbdinfo', [`${base}/gone`], { ...TOOL_ENV, LIBNBD_DEBUG: '1' });
    expect(refused.code).not.toBe(0);
    // libnbd shows the server's message in its debug output; the node logs it too.
    expect(refused.stderr).toContain('KEK "doomed"');
    const logged = events.find((e) => e.event === 'nbd.export.refused' && e.fields.export === 'gone');
    expect(String(logged?.fields.error)).toContain('encrypted volume gone cannot be opened');
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/copy`]);
  });
});

/** Runs the crash driver, SIGKILLed by itself (a failpoint) or by us as soon as it reports. */
function runDriver(dir: string, scenario: string): Promise<{ want: Record<string, string>; signal: string | null }> {
  const driver = join(import.meta.dirname, 'support', 'encrypted-crash-driver.ts');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', driver, dir, scenario], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let want: Record<string, string> | undefined;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /EXPECT (.*)\n/.exec(out);
      if (m !== null && want === undefined) {
        want = JSON.parse(m[1] as string) as Record<string, string>;
        if (scenario === 'flushed-write') child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (want === undefined || out.includes('FINISHED')) reject(new Error(`driver: ${out} ${err}`));
      else resolve({ want, signal });
    });
  });
}

async function digest(dev: BlockDevice, length = dev.size): Promise<string> {
  const h = createHash('sha256');
  for (let o = 0; o < length; o += 4 * MiB) h.update(await dev.read(o, Math.min(4 * MiB, length - o)));
  await dev.close();
  return h.digest('hex');
}

describe('crash consistency of encrypted volumes (kill -9)', () => {
  for (const scenario of ['flushed-write', 'merge']) {
    it(`${scenario === 'merge' ? 'a merge killed half-way finishes at the next start' : 'a FUA write survives a kill during later writes'}`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'ferry-xts-crash-'));
      try {
        const { want, signal } = await runDriver(dir, scenario);
        expect(signal).toBe('SIGKILL');
        const { engine, keyring } = await openNode(dir);
        try {
          expect(await digest(await engine.openExport('vol@a'))).toBe(want.a);
          if (scenario === 'flushed-write') {
            expect(await digest(await engine.openExport('vol'), 14 * MiB)).toBe(want.after);
            expect(await digest(await engine.openExport('vol@b'))).toBe(want.b);
          } else {
            expect(await digest(await engine.openExport('vol'))).toBe(want.live);
            const names = (await engine.listSnapshots('vol')).map((s) => s.name);
            if (names.includes('b')) expect(await digest(await engine.openExport('vol@b'))).toBe(want.b);
            else expect(names).toEqual(['a']);
          }
        } finally {
          await engine.close();
          await keyring.close();
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('encrypted volumes through the HTTP API', () => {
  it('spec.encrypted creates one; inspect shows it on the volume and its snapshots; bad input is 400 naming the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-xts-api-'));
    const { engine, keyring } = await openNode(dir);
    try {
      await keyring.createKek('team');
      const app = createApp({ engine });
      const call = <T>(method: string, path: string, body?: unknown) => requestJson<T>(app, method, path, body);
      const created = await call<{ volume_id: string }>('POST', '/v1/volumes', {
        name: 'db',
        spec: { size: MiB, encrypted: true },
        labels: { 'ferry.io/kek': 'team' },
      });
      expect(created.status).toBe(200);
      const view = await call<InspectView>('GET', '/v1/volumes/inspect/db');
      expect(view.body.volume.spec.encrypted).toBe(true);
      expect(view.body.volume.encryption).toEqual({ kek: 'team', key_provider: 'local' });
      expect(view.body.labels).toEqual({ 'ferry.io/kek': 'team', 'ferry.io/encrypted': 'true' });
      await engine.createSnapshot('db', { name: 's' });
      const snap = await call<InspectView>('GET', '/v1/volumes/inspect/db@s');
      expect([snap.body.volume.spec.encrypted, snap.body.volume.encryption?.kek]).toEqual([true, 'team']);
      expect((await call<InspectView>('GET', '/v1/volumes/inspect/db')).body.volume.spec.encrypted).toBe(true);
      await call('POST', '/v1/volumes', { name: 'p', spec: { size: MiB } });
      expect((await call<InspectView>('GET', '/v1/volumes/inspect/p')).body.volume.spec.encrypted).toBe(false);

      const bad: Array<[unknown, number, string]> = [
        [{ name: 'x', spec: { size: MiB, encrypted: 'yes' } }, 400, 'spec.encrypted'],
        [{ name: 'x', spec: { size: MiB }, labels: { 'ferry.io/encrypted': 'no' } }, 400, 'labels.ferry.io/encrypted'],
        [{ name: 'x', spec: { size: MiB, encrypted: true }, labels: { 'ferry.io/kek': 'nope' } }, 404, 'nope'],
        [
          { name: 'x', spec: { size: MiB, encrypted: true }, labels: { 'ferry.io/key-provider': 'hsm' } },
          400,
          'labels.ferry.io/key-provider',
        ],
      ];
      for (const [body, status, text] of bad) {
        const answer = await call<Record<string, unknown>>('POST', '/v1/volumes', body);
        expect(answer.status, JSON.stringify(body)).toBe(status);
        expect(JSON.stringify(answer.body)).toContain(text);
      }
      const removed = await call<Record<string, unknown>>('PUT', '/v1/volumes/db', {
        labels: { 'ferry.io/encrypted': '' },
      });
      expect(removed.status).toBe(400);
      expect((await engine.listVolumes()).map((v) => v.name)).toEqual(['db', 'p']);
    } finally {
      await engine.close();
      await keyring.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
