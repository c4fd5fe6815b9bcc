/**
 * AWS KMS through real backup and restore jobs, not only its conformance suite: credentials (and volume KEK
 * overrides, and encrypted volumes) whose KEK is a KMS key, served by test/support/aws-kms-standin.ts, a
 * protocol-level STAND-IN for KMS (KMS cannot run here), through the real @aws-sdk/client-kms.
 *
 * In this process (test/support/key-harness.ts): backup, restore bit-identical, incremental, rotation, and
 * crypto-shredding (key disabled, scheduled for deletion, deleted). Through a real `ferry node start` configured by
 * FERRY_KMS_*: an encrypted volume whose data key is wrapped by a KMS key, backed up and restored bit-identical,
 * then unopenable once that key is disabled. The CLI part needs `npm run build`.
 */

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  type KMSClient,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
} from '@aws-sdk/client-kms';
import { afterEach, describe, expect, it } from 'vitest';
import { AwsKmsProvider, createKmsClient } from '../kms/index.js';
import { type AwsKmsStandin, startAwsKmsStandin } from './support/aws-kms-standin.js';
import { runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';
import {
  backup,
  digest,
  filesUnder,
  type KeyHarness,
  openHarness,
  restore,
  volumeWithData,
} from './support/key-harness.js';
import { ok, run } from './support/run.js';

const MiB = 1024 * 1024;

let standin: AwsKmsStandin | undefined;
let h: KeyHarness | undefined;
let node: TestNode | undefined;
let tmp: string | undefined;

afterEach(async () => {
  await h?.close();
  await node?.stop();
  await standin?.close();
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  h = undefined;
  node = undefined;
  standin = undefined;
  tmp = undefined;
});

/** A stand-in KMS, a client for it, and a key per alias name. */
async function kmsWithKeys(...aliases: string[]): Promise<{ kms: KMSClient; ids: Map<string, string> }> {
  standin = await startAwsKmsStandin();
  const kms = createKmsClient({ endpoint: standin.endpoint, region: standin.region, credentials: standin.credentials });
  const ids = new Map<string, string>();
  for (const alias of aliases) {
    const created = await kms.send(new CreateKeyCommand({}));
    const id = created.KeyMetadata?.KeyId ?? '';
    await kms.send(new CreateAliasCommand({ AliasName: `alias/${alias}`, TargetKeyId: id }));
    ids.set(alias, id);
  }
  return { kms, ids };
}

async function kmsHarness(kms: KMSClient): Promise<KeyHarness> {
  h = await openHarness({ extra: [new AwsKmsProvider(kms)] });
  return h;
}

async function repoConfig(path: string): Promise<{ key: { wrapped: { provider: string; kek_version: number } } }> {
  const raw = (await filesUnder(path)).get(join(path, 'config'));
  if (raw === undefined) throw new Error(`no config under ${path}`);
  return JSON.parse(raw.toString('utf8')) as { key: { wrapped: { provider: string; kek_version: number } } };
}

describe('AWS KMS (stand-in) through backup and restore jobs', () => {
  it('backs up, restores bit-identical, incrementally too; one KMS call per repository open, none per chunk', async () => {
    const { kms } = await kmsWithKeys('ferry-backups');
    const k = await kmsHarness(kms);
    await k.credential('eu', { kek: 'alias/ferry-backups', key_provider: 'aws-kms' });
    await volumeWithData(k.engine, 'db', 8 * MiB);
    const first = await backup(k, 'db', 'eu');
    expect(first.status, JSON.stringify(first)).toBe('Done');
    expect((await repoConfig(join(k.objects, 'backups'))).key.wrapped.provider).toBe('aws-kms');
    const dev = await k.engine.openExport('db');
    await dev.write(3 * MiB + 5, randomBytes(200_000));
    await dev.close();
    const second = await backup(k, 'db', 'eu');
    expect(second.status).toBe('Done');
    const kmsCalls = k.counting.get('aws-kms')?.calls;
    expect(kmsCalls).toMatchObject({ wrap: 1, unwrap: 0 });

    await k.reopenJobs(); // nothing cached: the restores unwrap through KMS
    const before = standin?.operations.filter((o) => o === 'TrentService.Decrypt').length ?? 0;
    expect((await restore(k, first.backup_id as string, 'eu', 'db-1')).status).toBe('Done');
    expect((await restore(k, second.backup_id as string, 'eu', 'db-2')).status).toBe('Done');
    expect(await digest(k.engine, 'db-2')).toBe(await digest(k.engine, 'db'));
    expect(await digest(k.engine, 'db-1')).not.toBe(await digest(k.engine, 'db'));
    expect((standin?.operations.filter((o) => o === 'TrentService.Decrypt').length ?? 0) - before).toBe(1);
  });

  it('rotation: KMS rotates the key, Ferry rewraps each config (ReEncrypt), old and new backups restore', async () => {
    const { kms, ids } = await kmsWithKeys('ferry-backups');
    const k = await kmsHarness(kms);
    await k.credential('eu', { kek: 'alias/ferry-backups', key_provider: 'aws-kms' });
    await volumeWithData(k.engine, 'db');
    const old = await backup(k, 'db', 'eu');
    expect(old.status).toBe('Done');
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: ids.get('ferry-backups') }));
    const result = await k.keys.rotate({ kek: 'alias/ferry-backups', key_provider: 'aws-kms' });
    expect(result.version).toBe(2);
    expect(result.repositories).toEqual([expect.objectContaining({ from_version: 1, to_version: 2 })]);
    expect(standin?.operations).toContain('TrentService.ReEncrypt');
    expect((await repoConfig(join(k.objects, 'backups'))).key.wrapped.kek_version).toBe(2);
    await k.reopenJobs();
    const dev = await k.engine.openExport('db');
    await dev.write(0, randomBytes(4096));
    await dev.close();
    const fresh = await backup(k, 'db', 'eu');
    expect(fresh.status).toBe('Done');
    expect((await restore(k, old.backup_id as string, 'eu', 'old')).status).toBe('Done');
    expect((await restore(k, fresh.backup_id as string, 'eu', 'new')).status).toBe('Done');
    expect(await digest(k.engine, 'new')).toBe(await digest(k.engine, 'db'));
  });

  it('crypto-shredding: a disabled, pending-deletion or deleted key fails its restores plainly; others restore', async () => {
    const { kms, ids } = await kmsWithKeys('team-a', 'team-b');
    const k = await kmsHarness(kms);
    await k.credential('a', { kek: 'alias/team-a', key_provider: 'aws-kms', prefix: 'a' });
    await k.credential('b', { kek: 'alias/team-b', key_provider: 'aws-kms', prefix: 'b' });
    // A volume of team b's credential whose backups go under team a's key (the ferry.io/kek override).
    await volumeWithData(k.engine, 'va');
    await volumeWithData(k.engine, 'vb');
    await volumeWithData(k.engine, 'vo', 4 * MiB, {
      'ferry.io/kek': 'alias/team-a',
      'ferry.io/key-provider': 'aws-kms',
    });
    const ba = await backup(k, 'va', 'a');
    const bb = await backup(k, 'vb', 'b');
    const bo = await backup(k, 'vo', 'b');
    expect([ba.status, bb.status, bo.status]).toEqual(['Done', 'Done', 'Done']);
    const keyA = ids.get('team-a') as string;

    const attempts: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['disabled', () => kms.send(new DisableKeyCommand({ KeyId: keyA })), /disabled or scheduled for deletion/],
      ['enabled again', () => kms.send(new EnableKeyCommand({ KeyId: keyA })), /./],
      [
        'scheduled for deletion',
        () => kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyA, PendingWindowInDays: 7 })),
        /disabled or scheduled for deletion/,
      ],
      ['deleted', async () => standin?.purgeKey(keyA), /has no KMS key "alias\/team-a"/],
    ];
    let n = 0;
    for (const [state, act, message] of attempts) {
      await act();
      await k.reopenJobs(); // the cached master secrets would hide the change for up to 15 minutes
      for (const [b, cred] of [
        [ba, 'a'],
        [bo, 'b'],
      ] as const) {
        const name = `r${n++}`;
        const done = await restore(k, b.backup_id as string, cred, name);
        if (state === 'enabled again') {
          expect(done.status, `${state}: ${JSON.stringify(done)}`).toBe('Done');
          continue;
        }
        expect(done.status, state).toBe('Failed');
        expect(done.info.join(' '), state).toMatch(message);
        expect(
          (await k.engine.listVolumes()).map((v) => v.name),
          state,
        ).not.toContain(name);
      }
      const other = await restore(k, bb.backup_id as string, 'b', `b${n++}`);
      expect(other.status, state).toBe('Done');
    }
    expect(await digest(k.engine, 'r3')).toBe(await digest(k.engine, 'va'));
    expect(await digest(k.engine, 'r4')).toBe(await digest(k.engine, 'vo'));
  });
});

describe('an encrypted volume whose key is wrapped by AWS KMS (stand-in), through a ferry node', () => {
  it('creates, writes, backs up and restores bit-identical; a disabled key makes it unopenable', async () => {
    const { kms, ids } = await kmsWithKeys('volumes', 'backups');
    tmp = await mkdtemp(join(tmpdir(), 'ferry-kms-node-'));
    await mkdir(join(tmp, 'objects', 'bucket'), { recursive: true });
    node = await startTestNode(join(tmp, 'node'), {
      FERRY_KMS_REGION: standin?.region,
      FERRY_KMS_ENDPOINT: standin?.endpoint,
      AWS_ACCESS_KEY_ID: standin?.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: standin?.credentials.secretAccessKey,
    });
    const api = node.apiUrl;
    const nbd = node.nbdUrl;
    const ferry = (...args: string[]) => runFerry(api, args);
    const created = await ferry(
      ...['volume', 'create', 'db', '--size', '16M', '--encrypted', '--kek', 'alias/volumes'],
      ...['--key-provider', 'aws-kms'],
    );
    expect(created.code, created.stderr).toBe(0);
    expect((await ferry('volume', 'create', 'plain', '--size', '1M')).code).toBe(0);
    const shown = await ferry('volume', 'inspect', 'db');
    expect(shown.stdout).toMatch(/^Encrypted\s+:\s+yes \(AES-256-XTS, KEK alias\/volumes of aws-kms\)$/m);
    const image = Buffer.alloc(16 * MiB);
    randomBytes(3 * MiB).copy(image, 100);
    Buffer.from('kms '.repeat(100_000)).copy(image, 9 * MiB);
    const raw = join(tmp, 'db.raw');
    await writeFile(raw, image);
    await ok('nbdcopy', [raw, `${nbd}/db`]);

    const cred = await ferry(
      ...['credentials', 'create', 'kms', '--provider', 'directory', '--path', join(tmp, 'objects')],
      ...['--bucket', 'bucket', '--kek', 'alias/backups', '--key-provider', 'aws-kms'],
    );
    expect(cred.code, cred.stderr).toBe(0);
    const done = await runFerryJson<{ status: string; backup_id: string }>(api, [
      ...['cloudsnap', 'backup', 'db', '--cred', 'kms', '--wait'],
    ]);
    expect(done.status).toBe('Done');
    const restored = await ferry('cloudsnap', 'restore', done.backup_id, '--cred', 'kms', '--name', 'db2', '--wait');
    expect(restored.code, restored.stderr).toBe(0);
    await ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', raw, `${nbd}/db2`]);
    // The label travelled with the backup: the restored volume is encrypted too, under the same KMS key.
    const copy = await runFerryJson<{ volume: { spec: { encrypted: boolean }; encryption: unknown } }>(api, [
      ...['volume', 'inspect', 'db2'],
    ]);
    expect(copy.volume.spec.encrypted).toBe(true);
    expect(copy.volume.encryption).toEqual({ kek: 'alias/volumes', key_provider: 'aws-kms' });

    await kms.send(new DisableKeyCommand({ KeyId: ids.get('volumes') }));
    const refused = await run('nbdinfo', [`${nbd}/db`]);
    expect(refused.code).not.toBe(0);
    const line = node.log.find((l) => l.includes('nbd.export.refused') && l.includes('"export":"db"'));
    expect(line).toContain('KEK \\"alias/volumes\\" of key provider \\"aws-kms\\"');
    expect(line).toContain('disabled or scheduled for deletion');
    expect((await run('nbdinfo', [`${nbd}/plain`])).code).toBe(0);
  });
});
