/**
 * The AWS KMS key provider ('aws-kms'): KEKs are symmetric KMS keys, named by key ID, key ARN, alias name
 * (`alias/...`) or alias ARN. generateDataKey = GenerateDataKey (KeySpec AES_256), wrap = Encrypt, unwrap = Decrypt
 * (with KeyId, so a blob of another key is refused), rewrap = ReEncrypt to the same key (the plaintext stays in KMS),
 * describeKek = DescribeKey. The encryption context is KMS's EncryptionContext, which KMS binds into the ciphertext
 * (a different one is InvalidCiphertextException). WrappedKey.ciphertext is the CiphertextBlob in base64.
 *
 * Versions: KMS keeps every key material of a key and picks the right one from the ciphertext, and shows no version
 * numbers. With `versions: 'rotations'` (the default) kek_version is 1 + the number of completed rotations of the key
 * (ListKeyRotations, automatic and on-demand alike), read right after the call that used the key, so it grows with
 * each rotation and rewrap reports the new number; a rotation landing between the two calls makes the number one too
 * high, which is harmless because unwrap never uses it. This needs kms:ListKeyRotations, which KMS allows only in the
 * key's own account; for a key in another account use `versions: 'fixed'` (always 1).
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import { FerryError, invalidArgument } from '../common/index.js';
import { kmsError } from './aws-kms-errors.js';
import { checkContext, checkPlaintext, checkWrappedKey, wrappedKeyMismatch } from './context.js';
import { kmsSdk } from './sdk.js';
import type { DataKey, EncryptionContext, KekInfo, KeyProvider, WrappedKey } from './types.js';

/** The provider name in every WrappedKey this provider makes. */
export const AWS_KMS_PROVIDER = 'aws-kms';

/** How the provider behaves. */
export interface AwsKmsProviderOptions {
  /**
   * What kek_version reports: 'rotations' (default) 1 + the key's completed rotations, needing kms:ListKeyRotations
   * in the key's account; 'fixed' always 1.
   */
  versions?: 'rotations' | 'fixed';
}

const KMS_KEY = /^[A-Za-z0-9:/_.-]+$/;

/** Rejects a KMS key reference that is not a key ID, key ARN, alias name or alias ARN in shape. */
export function checkKmsKeyId(key: unknown, field = 'kek'): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 2048 || !KMS_KEY.test(key)) {
    throw invalidArgument(field, 'must be a KMS key ID, key ARN, alias name (alias/...) or alias ARN');
  }
  return key;
}

function contextOf(context: EncryptionContext): Record<string, string> {
  return { ...checkContext(context) };
}

/** The AWS KMS provider; give it a KMSClient (see `createKmsClient`). */
export class AwsKmsProvider implements KeyProvider {
  readonly name = AWS_KMS_PROVIDER;
  private readonly versions: 'rotations' | 'fixed';

  constructor(
    private readonly client: KMSClient,
    options: AwsKmsProviderOptions = {},
  ) {
    this.versions = options.versions ?? 'rotations';
  }

  async describeKek(kek: string): Promise<KekInfo> {
    checkKmsKeyId(kek);
    const out = await this.run('DescribeKey', kek, () =>
      this.client.send(new (kmsSdk().DescribeKeyCommand)({ KeyId: kek })),
    );
    const meta = out.KeyMetadata;
    const state = meta?.KeyState;
    if (state === 'Disabled' || state === 'PendingDeletion' || state === 'PendingReplicaDeletion') {
      throw new FerryError(
        'PERMISSION_DENIED',
        `KMS key "${kek}" is disabled or scheduled for deletion: backups under it are unreadable until it is ` +
          `enabled again (or its deletion cancelled) (state ${state})`,
      );
    }
    if (state !== 'Enabled' || meta?.KeyUsage !== 'ENCRYPT_DECRYPT' || meta.KeySpec !== 'SYMMETRIC_DEFAULT') {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `KMS key "${kek}" must be an enabled symmetric encryption key (state ${state}, usage ${meta?.KeyUsage}, ` +
          `spec ${meta?.KeySpec})`,
      );
    }
    return { id: kek, version: await this.version(kek, meta.Arn) };
  }

  async generateDataKey(kek: string, context: EncryptionContext): Promise<DataKey> {
    checkKmsKeyId(kek);
    const input = { KeyId: kek, KeySpec: 'AES_256' as const, EncryptionContext: contextOf(context) };
    const out = await this.run('GenerateDataKey', kek, () =>
      this.client.send(new (kmsSdk().GenerateDataKeyCommand)(input)),
    );
    const plaintext = Buffer.from(out.Plaintext ?? new Uint8Array());
    out.Plaintext?.fill(0);
    if (plaintext.length !== 32) {
      throw new FerryError('INTERNAL', `AWS KMS returned a ${plaintext.length}-byte data key for "${kek}", not 32`);
    }
    return { plaintext, wrapped: await this.wrappedFrom(kek, out.CiphertextBlob, out.KeyId) };
  }

  async wrap(kek: string, plaintext: Buffer, context: EncryptionContext): Promise<WrappedKey> {
    checkKmsKeyId(kek);
    const input = { KeyId: kek, Plaintext: checkPlaintext(plaintext), EncryptionContext: contextOf(context) };
    const out = await this.run('Encrypt', kek, () => this.client.send(new (kmsSdk().EncryptCommand)(input)));
    return this.wrappedFrom(kek, out.CiphertextBlob, out.KeyId);
  }

  async unwrap(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    const w = this.ours(wrapped);
    const input = { CiphertextBlob: this.blob(w), KeyId: w.kek_id, EncryptionContext: contextOf(context) };
    const out = await this.run('Decrypt', w.kek_id, () => this.client.send(new (kmsSdk().DecryptCommand)(input)));
    const plaintext = Buffer.from(out.Plaintext ?? new Uint8Array());
    out.Plaintext?.fill(0);
    return plaintext;
  }

  async rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    const w = this.ours(wrapped);
    const ctx = contextOf(context);
    const input = {
      CiphertextBlob: this.blob(w),
      SourceKeyId: w.kek_id,
      SourceEncryptionContext: ctx,
      DestinationKeyId: w.kek_id,
      DestinationEncryptionContext: ctx,
    };
    const out = await this.run('ReEncrypt', w.kek_id, () => this.client.send(new (kmsSdk().ReEncryptCommand)(input)));
    return this.wrappedFrom(w.kek_id, out.CiphertextBlob, out.KeyId);
  }

  private ours(wrapped: WrappedKey): WrappedKey {
    const w = checkWrappedKey(wrapped);
    if (w.provider !== AWS_KMS_PROVIDER) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `this key was wrapped by the "${w.provider}" key provider, not AWS KMS; unwrap it there`,
      );
    }
    checkKmsKeyId(w.kek_id, 'wrapped.kek_id');
    return w;
  }

  private blob(w: WrappedKey): Buffer {
    const blob = Buffer.from(w.ciphertext, 'base64');
    if (blob.length === 0) throw wrappedKeyMismatch();
    return blob;
  }

  private async wrappedFrom(kek: string, blob: Uint8Array | undefined, arn: string | undefined): Promise<WrappedKey> {
    if (blob === undefined || blob.length === 0) {
      throw new FerryError('INTERNAL', `AWS KMS returned no ciphertext for "${kek}"`);
    }
    const kek_version = await this.version(kek, arn);
    return { provider: AWS_KMS_PROVIDER, kek_id: kek, kek_version, ciphertext: Buffer.from(blob).toString('base64') };
  }

  /** 1 + completed rotations of the key `arn` (ListKeyRotations takes a key ID or ARN, not an alias). */
  private async version(kek: string, arn: string | undefined): Promise<number> {
    if (this.versions === 'fixed') return 1;
    if (arn === undefined) throw new FerryError('INTERNAL', `AWS KMS did not name the key behind "${kek}"`);
    let rotations = 0;
    let marker: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const input = { KeyId: arn, ...(marker !== undefined && { Marker: marker }) };
      const out = await this.run('ListKeyRotations', kek, () =>
        this.client.send(new (kmsSdk().ListKeyRotationsCommand)(input)),
      );
      rotations += out.Rotations?.length ?? 0;
      if (out.Truncated !== true || out.NextMarker === undefined) return rotations + 1;
      marker = out.NextMarker;
    }
    throw new FerryError('INTERNAL', `AWS KMS kept paging the rotations of "${kek}"`);
  }

  private async run<T>(op: string, key: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err: unknown) {
      throw kmsError(err, { key, op, where: await this.where() });
    }
  }

  /** `AWS KMS in <region>`, or `AWS KMS at <endpoint> (<region>)` for a configured endpoint. */
  private async where(): Promise<string> {
    let region = 'an unknown region';
    try {
      region = await this.client.config.region();
    } catch {
      // no region configured: the error itself says so
    }
    const endpoint = this.client.config.endpoint;
    if (endpoint === undefined) return `AWS KMS in ${region}`;
    try {
      const e = await endpoint();
      const port = e.port === undefined ? '' : `:${e.port}`;
      return `AWS KMS at ${e.protocol}//${e.hostname}${port}${e.path === '/' ? '' : e.path} (${region})`;
    } catch {
      return `AWS KMS in ${region}`;
    }
  }
}
