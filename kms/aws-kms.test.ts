/**
 * The AWS KMS provider through the real @aws-sdk/client-kms (SigV4-signed JSON 1.1 requests) against
 * test/support/aws-kms-standin.ts, a protocol-level STAND-IN written from the KMS API Reference (KMS cannot run here).
 */
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
import { type AwsKmsStandin, startAwsKmsStandin } from '../test/support/aws-kms-standin.js';
import { rejection } from '../test/support/rejection.js';
import { AwsKmsProvider } from './aws-kms.js';
import { createKmsClient, type KmsClientOptions } from './aws-kms-client.js';
import { describeKeyProviderConformance } from './conformance.js';

const context = { repository: 'repo-1', tenant: 'acme' };
const standins: AwsKmsStandin[] = [];

interface Setup {
  standin: AwsKmsStandin;
  kms: KMSClient;
  keyId: string;
  arn: string;
}

/** A stand-in with one key (and alias/backups on it), and a client for it. */
async function setup(options: Partial<KmsClientOptions> = {}): Promise<Setup> {
  const standin = await startAwsKmsStandin();
  standins.push(standin);
  const kms = client(standin, options);
  const created = await kms.send(new CreateKeyCommand({}));
  const keyId = created.KeyMetadata?.KeyId ?? '';
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/backups', TargetKeyId: keyId }));
  return { standin, kms, keyId, arn: created.KeyMetadata?.Arn ?? '' };
}

function client(standin: AwsKmsStandin, options: Partial<KmsClientOptions> = {}): KMSClient {
  const { endpoint, region, credentials } = standin;
  return createKmsClient({ endpoint, region, credentials, ...options });
}

afterEach(async () => {
  for (const s of standins.splice(0)) await s.close();
});

for (const by of ['alias', 'ARN'] as const) {
  describeKeyProviderConformance(`aws kms (stand-in), key by ${by}`, async () => {
    const { standin, kms, keyId, arn } = await setup();
    return {
      provider: new AwsKmsProvider(kms),
      kek: by === 'alias' ? 'alias/backups' : arn,
      rotate: async () => void (await kms.send(new RotateKeyOnDemandCommand({ KeyId: keyId }))),
      close: () => standin.close(),
    };
  });
}

describe('AwsKmsProvider (against the KMS stand-in)', () => {
  it('finds a key by ID, ARN, alias name and alias ARN; a blob of another key is DATA_CORRUPTION', async () => {
    const { standin, kms, keyId, arn } = await setup();
    const kmsProvider = new AwsKmsProvider(kms);
    const aliasArn = `arn:aws:kms:${standin.region}:${standin.accountId}:alias/backups`;
    for (const name of [keyId, arn, 'alias/backups', aliasArn]) {
      expect(await kmsProvider.describeKek(name)).toEqual({ id: name, version: 1 });
      const wrapped = await kmsProvider.wrap(name, Buffer.from('dek'), context);
      expect(wrapped.kek_id).toBe(name);
      expect(await kmsProvider.unwrap({ ...wrapped, kek_id: arn }, context)).toEqual(Buffer.from('dek'));
    }
    const other = (await kms.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId ?? '';
    const wrapped = await kmsProvider.wrap('alias/backups', Buffer.from('dek'), context);
    expect((await rejection(kmsProvider.unwrap({ ...wrapped, kek_id: other }, context))).code).toBe('DATA_CORRUPTION');
    expect((await rejection(kmsProvider.describeKek('alias/nope'))).code).toBe('NOT_FOUND');
    expect((await rejection(kmsProvider.describeKek('has space'))).code).toBe('INVALID_ARGUMENT');
  });

  it('versions count rotations (ListKeyRotations by ARN); with versions: fixed they stay 1 and no rotations are listed', async () => {
    const { standin, kms, keyId } = await setup();
    const counted = new AwsKmsProvider(kms);
    const v1 = await counted.generateDataKey('alias/backups', context);
    expect(v1.wrapped.kek_version).toBe(1);
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: keyId }));
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: keyId }));
    expect((await counted.describeKek('alias/backups')).version).toBe(3);
    expect((await counted.rewrap(v1.wrapped, context)).kek_version).toBe(3);

    const fixed = new AwsKmsProvider(kms, { versions: 'fixed' });
    const listed = standin.operations.filter((op) => op === 'TrentService.ListKeyRotations').length;
    const wrapped = await fixed.wrap('alias/backups', Buffer.from('x'), context);
    expect([wrapped.kek_version, (await fixed.describeKek('alias/backups')).version]).toEqual([1, 1]);
    expect(await fixed.unwrap(v1.wrapped, context)).toEqual(v1.plaintext);
    expect(standin.operations.filter((op) => op === 'TrentService.ListKeyRotations')).toHaveLength(listed);
  });

  it('a disabled key or one scheduled for deletion is PERMISSION_DENIED (unreadable); once deleted, NOT_FOUND', async () => {
    const { standin, kms, keyId } = await setup();
    const kmsProvider = new AwsKmsProvider(kms);
    const wrapped = await kmsProvider.wrap('alias/backups', Buffer.from('dek'), context);

    await kms.send(new DisableKeyCommand({ KeyId: keyId }));
    for (const attempt of [
      kmsProvider.unwrap(wrapped, context),
      kmsProvider.wrap('alias/backups', Buffer.from('x'), context),
      kmsProvider.describeKek('alias/backups'),
    ]) {
      const err = await rejection(attempt);
      expect(err.code).toBe('PERMISSION_DENIED');
      expect(err.message).toContain('disabled or scheduled for deletion: backups under it are unreadable');
    }
    await kms.send(new EnableKeyCommand({ KeyId: keyId }));
    expect(await kmsProvider.unwrap(wrapped, context)).toEqual(Buffer.from('dek'));

    await kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
    const pending = await rejection(kmsProvider.rewrap(wrapped, context));
    expect(pending.code).toBe('PERMISSION_DENIED');
    expect(pending.message).toContain('backups under it are unreadable');
    standin.purgeKey(keyId);
    expect((await rejection(kmsProvider.unwrap(wrapped, context))).code).toBe('NOT_FOUND');
  });

  it('the context is bound: another context is DATA_CORRUPTION, on Decrypt and ReEncrypt', async () => {
    const { kms } = await setup();
    const kmsProvider = new AwsKmsProvider(kms);
    const wrapped = await kmsProvider.wrap('alias/backups', Buffer.from('dek'), context);
    expect((await rejection(kmsProvider.unwrap(wrapped, { ...context, tenant: 'evil' }))).code).toBe('DATA_CORRUPTION');
    expect((await rejection(kmsProvider.rewrap(wrapped, {}))).code).toBe('DATA_CORRUPTION');
    expect((await rejection(kmsProvider.unwrap({ ...wrapped, provider: 'vault' }, context))).code).toBe(
      'FAILED_PRECONDITION',
    );
  });

  it('an access key KMS does not know is UNAUTHENTICATED, without the secret in the error', async () => {
    const { standin } = await setup();
    const secretAccessKey = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const stranger = client(standin, { credentials: { accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey } });
    const err = await rejection(new AwsKmsProvider(stranger).wrap('alias/backups', Buffer.from('x'), context));
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.message).toContain(`AWS KMS at ${standin.endpoint} (${standin.region})`);
    expect(`${err.message}\n${err.stack}\n${String(err.cause)}`).not.toContain(secretAccessKey);
  });

  it('KMS stopped or hung: UNAVAILABLE naming the endpoint and region, after the SDK retries, without waiting long', async () => {
    const { standin, kms } = await setup({ requestTimeoutMs: 300, maxAttempts: 1 });
    const kmsProvider = new AwsKmsProvider(kms);
    standin.stall(true);
    const hung = await rejection(kmsProvider.describeKek('alias/backups'));
    expect(hung.code).toBe('UNAVAILABLE');
    expect(hung.message).toContain(`AWS KMS at ${standin.endpoint} (${standin.region}) is unreachable`);

    await standin.close();
    const retrying = new AwsKmsProvider(client(standin));
    const started = Date.now();
    const stopped = await rejection(retrying.wrap('alias/backups', Buffer.from('x'), context));
    expect(stopped.code).toBe('UNAVAILABLE');
    expect(stopped.message).toBe(
      `AWS KMS at ${standin.endpoint} (${standin.region}) is unreachable (ECONNREFUSED): check the endpoint and network`,
    );
    expect(Date.now() - started).toBeLessThan(5_000); // three quick attempts, no long backoff
  });
});
