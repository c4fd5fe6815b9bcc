/**
 * A STAND-IN for AWS KMS, not KMS: KMS cannot be run here, so this small HTTP server on 127.0.0.1 speaks the KMS JSON
 * 1.1 protocol (`POST /`, `X-Amz-Target: TrentService.<Operation>`, `Content-Type: application/x-amz-json-1.1`,
 * blobs as base64, timestamps as epoch seconds, errors as HTTP 400 with `{"__type": "...Exception", "message": ...}`),
 * written from the AWS KMS API Reference pages of the operations below and their documented exceptions.
 *
 * Operations: CreateKey, DescribeKey, CreateAlias, Encrypt, Decrypt, GenerateDataKey, ReEncrypt, DisableKey,
 * EnableKey, ScheduleKeyDeletion, RotateKeyOnDemand, ListKeyRotations. Keys are named by key ID, key ARN, alias name
 * (`alias/...`) or alias ARN where the docs allow it; ListKeyRotations takes key ID or ARN only. A disabled key is
 * DisabledException, a key pending deletion KMSInvalidStateException, an unknown one NotFoundException.
 *
 * Authentication: every request must carry a SigV4 `Authorization` header whose credential names the expected access
 * key id, this region and service `kms` (UnrecognizedClientException / InvalidSignatureException otherwise); the
 * signature itself is not verified.
 *
 * Ciphertext blobs (this stand-in's own layout; real KMS blobs are opaque too):
 *   0x01 | key UUID (36 ASCII bytes) | key material index (uint16 BE) | nonce (12) | tag (16) | AES-256-GCM ciphertext
 * with additional data = key UUID | material index | the encryption context as JSON with sorted keys, so a different
 * context, key or altered byte fails authentication (InvalidCiphertextException), as KMS documents.
 *
 * Simplified: symmetric keys only; rotation completes at once (KMS finishes it shortly after the call); deletion
 * stays pending until the test calls `purgeKey` (KMS waits 7-30 days); no grants, key policies, tags or multi-Region.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How to start the stand-in. */
export interface AwsKmsStandinOptions {
  region?: string;
  accountId?: string;
  accessKeyId?: string;
}

/** A running stand-in. */
export interface AwsKmsStandin {
  /** e.g. `http://127.0.0.1:41234` */
  endpoint: string;
  region: string;
  accountId: string;
  /** Credentials the stand-in accepts (the secret is not checked). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** The X-Amz-Target operation of every request so far. */
  operations: string[];
  /** Ends the waiting period of a key scheduled for deletion: it is gone, as after the real window. */
  purgeKey(keyId: string): void;
  /** While on, requests are accepted but never answered. */
  stall(on: boolean): void;
  close(): Promise<void>;
}

interface Key {
  id: string;
  arn: string;
  created: number;
  state: 'Enabled' | 'Disabled' | 'PendingDeletion';
  deletionDate: number | undefined;
  materials: Buffer[];
  rotations: { date: number; type: 'ON_DEMAND' }[];
}

class KmsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

type Body = Record<string, unknown>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function sortedJson(context: Record<string, string>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

function contextOf(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new KmsError('ValidationException', 'EncryptionContext must be a map of strings');
  }
  return value as Record<string, string>;
}

function blobOf(value: unknown, field: string): Buffer {
  if (typeof value !== 'string') throw new KmsError('ValidationException', `${field} is required`);
  return Buffer.from(value, 'base64');
}

/** Starts a stand-in on a free loopback port. */
export async function startAwsKmsStandin(options: AwsKmsStandinOptions = {}): Promise<AwsKmsStandin> {
  const region = options.region ?? 'eu-west-1';
  const accountId = options.accountId ?? '111122223333';
  const accessKeyId = options.accessKeyId ?? 'AKIASTANDINEXAMPLE01';
  const keys = new Map<string, Key>();
  const aliases = new Map<string, string>(); // alias/name -> key id
  const operations: string[] = [];
  let stalled = false;
  const arnPrefix = `arn:aws:kms:${region}:${accountId}:`;

  function resolve(keyId: unknown, allowAlias = true): Key {
    if (typeof keyId !== 'string' || keyId.length === 0) throw new KmsError('ValidationException', 'KeyId is required');
    let name = keyId.startsWith(arnPrefix) ? keyId.slice(arnPrefix.length) : keyId;
    if (name.startsWith('alias/')) {
      if (!allowAlias) throw new KmsError('ValidationException', 'Specify the key ID or key ARN of the KMS key');
      const target = aliases.get(name);
      if (target === undefined) throw new KmsError('NotFoundException', `Alias ${arnPrefix}${name} is not found.`);
      name = target;
    } else if (name.startsWith('key/')) {
      name = name.slice('key/'.length);
    }
    if (!UUID.test(name)) throw new KmsError('NotFoundException', `Invalid keyId '${keyId}'`);
    const key = keys.get(name);
    if (key === undefined) throw new KmsError('NotFoundException', `Key '${arnPrefix}key/${name}' does not exist`);
    return key;
  }

  function usable(key: Key): Key {
    if (key.state === 'Disabled') throw new KmsError('DisabledException', `${key.arn} is disabled.`);
    if (key.state === 'PendingDeletion')
      throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
    return key;
  }

  function aad(key: Key, index: number, context: Record<string, string>): Buffer {
    const idx = Buffer.alloc(2);
    idx.writeUInt16BE(index);
    return Buffer.concat([Buffer.from(key.id), idx, Buffer.from(sortedJson(context))]);
  }

  function seal(key: Key, plaintext: Buffer, context: Record<string, string>): string {
    if (plaintext.length < 1 || plaintext.length > 4096) {
      throw new KmsError('ValidationException', 'Plaintext must be 1 to 4096 bytes');
    }
    const index = key.materials.length - 1;
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.materials[index] as Buffer, nonce);
    cipher.setAAD(aad(key, index, context));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const idx = Buffer.alloc(2);
    idx.writeUInt16BE(index);
    return Buffer.concat([Buffer.from([1]), Buffer.from(key.id), idx, nonce, cipher.getAuthTag(), ct]).toString(
      'base64',
    );
  }

  /** Decrypts a blob; `keyId`, when given, must name the key that encrypted it. */
  function open(blob: Buffer, keyId: unknown, context: Record<string, string>): { key: Key; plaintext: Buffer } {
    const invalid = new KmsError('InvalidCiphertextException', '');
    if (blob.length < 1 + 36 + 2 + 12 + 16 + 1 || blob[0] !== 1) throw invalid;
    const id = blob.subarray(1, 37).toString('latin1');
    const index = blob.readUInt16BE(37);
    const named = keyId === undefined ? undefined : resolve(keyId);
    if (named !== undefined && named.id !== id) {
      throw new KmsError(
        'IncorrectKeyException',
        'The key ID in the request does not identify a KMS key that can perform this operation.',
      );
    }
    if (!UUID.test(id)) throw invalid;
    const key = usable(named ?? resolve(id));
    const material = key.materials[index];
    if (material === undefined) throw invalid;
    try {
      const decipher = createDecipheriv('aes-256-gcm', material, blob.subarray(39, 51));
      decipher.setAAD(aad(key, index, context));
      decipher.setAuthTag(blob.subarray(51, 67));
      return { key, plaintext: Buffer.concat([decipher.update(blob.subarray(67)), decipher.final()]) };
    } catch {
      throw invalid;
    }
  }

  function metadata(key: Key): Body {
    return {
      AWSAccountId: accountId,
      KeyId: key.id,
      Arn: key.arn,
      CreationDate: key.created,
      Enabled: key.state === 'Enabled',
      Description: '',
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: key.state,
      ...(key.deletionDate !== undefined && { DeletionDate: key.deletionDate }),
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      KeySpec: 'SYMMETRIC_DEFAULT',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      MultiRegion: false,
    };
  }

  const ops: Record<string, (body: Body) => Body> = {
    CreateKey: () => {
      const id = randomUUID();
      const key: Key = {
        id,
        arn: `${arnPrefix}key/${id}`,
        created: Date.now() / 1000,
        state: 'Enabled',
        deletionDate: undefined,
        materials: [randomBytes(32)],
        rotations: [],
      };
      keys.set(id, key);
      return { KeyMetadata: metadata(key) };
    },
    DescribeKey: (b) => ({ KeyMetadata: metadata(resolve(b.KeyId)) }),
    CreateAlias: (b) => {
      const name = b.AliasName;
      if (typeof name !== 'string' || !/^alias\/[a-zA-Z0-9/_-]+$/.test(name) || name.startsWith('alias/aws/')) {
        throw new KmsError('ValidationException', 'AliasName must begin with alias/ and not with alias/aws/');
      }
      if (aliases.has(name))
        throw new KmsError('AlreadyExistsException', `An alias with the name ${arnPrefix}${name} already exists`);
      aliases.set(name, resolve(b.TargetKeyId, false).id);
      return {};
    },
    Encrypt: (b) => {
      const key = usable(resolve(b.KeyId));
      const blob = seal(key, blobOf(b.Plaintext, 'Plaintext'), contextOf(b.EncryptionContext));
      return { CiphertextBlob: blob, KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
    },
    GenerateDataKey: (b) => {
      const key = usable(resolve(b.KeyId));
      const bytes = b.KeySpec === 'AES_256' ? 32 : b.KeySpec === 'AES_128' ? 16 : Number(b.NumberOfBytes);
      if (!(bytes >= 1 && bytes <= 1024)) throw new KmsError('ValidationException', 'Specify KeySpec or NumberOfBytes');
      const plaintext = randomBytes(bytes);
      const blob = seal(key, plaintext, contextOf(b.EncryptionContext));
      return { CiphertextBlob: blob, Plaintext: plaintext.toString('base64'), KeyId: key.arn };
    },
    Decrypt: (b) => {
      const { key, plaintext } = open(
        blobOf(b.CiphertextBlob, 'CiphertextBlob'),
        b.KeyId,
        contextOf(b.EncryptionContext),
      );
      return { KeyId: key.arn, Plaintext: plaintext.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
    },
    ReEncrypt: (b) => {
      const blob = blobOf(b.CiphertextBlob, 'CiphertextBlob');
      const source = open(blob, b.SourceKeyId, contextOf(b.SourceEncryptionContext));
      const destination = usable(resolve(b.DestinationKeyId));
      return {
        CiphertextBlob: seal(destination, source.plaintext, contextOf(b.DestinationEncryptionContext)),
        SourceKeyId: source.key.arn,
        KeyId: destination.arn,
        SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      };
    },
    DisableKey: (b) => {
      const key = resolve(b.KeyId, false);
      if (key.state === 'PendingDeletion')
        throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
      key.state = 'Disabled';
      return {};
    },
    EnableKey: (b) => {
      const key = resolve(b.KeyId, false);
      if (key.state === 'PendingDeletion')
        throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
      key.state = 'Enabled';
      return {};
    },
    ScheduleKeyDeletion: (b) => {
      const key = resolve(b.KeyId, false);
      const days = b.PendingWindowInDays === undefined ? 30 : Number(b.PendingWindowInDays);
      if (!(days >= 7 && days <= 30)) throw new KmsError('ValidationException', 'PendingWindowInDays must be 7 to 30');
      key.state = 'PendingDeletion';
      key.deletionDate = Date.now() / 1000 + days * 86_400;
      return { KeyId: key.arn, DeletionDate: key.deletionDate, KeyState: key.state, PendingWindowInDays: days };
    },
    RotateKeyOnDemand: (b) => {
      const key = usable(resolve(b.KeyId, false));
      if (key.rotations.length >= 10) throw new KmsError('LimitExceededException', 'On-demand rotation limit reached');
      key.materials.push(randomBytes(32));
      key.rotations.push({ date: Date.now() / 1000, type: 'ON_DEMAND' });
      return { KeyId: key.id };
    },
    ListKeyRotations: (b) => {
      const key = resolve(b.KeyId, false);
      const limit = b.Limit === undefined ? 100 : Number(b.Limit);
      const start = b.Marker === undefined ? 0 : Number(b.Marker);
      const page = key.rotations.slice(start, start + limit);
      const next = start + page.length;
      const Rotations = page.map((r) => ({ KeyId: key.arn, RotationDate: r.date, RotationType: r.type }));
      return {
        Rotations,
        Truncated: next < key.rotations.length,
        ...(next < key.rotations.length && { NextMarker: String(next) }),
      };
    },
  };

  function checkSignature(req: IncomingMessage): void {
    const header = req.headers.authorization;
    const match =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=[^,]+, ?Signature=[0-9a-f]{64}$/.exec(
        header ?? '',
      );
    if (match === null) throw new KmsError('MissingAuthenticationTokenException', 'Missing Authentication Token');
    if (match[1] !== accessKeyId) {
      throw new KmsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    }
    if (match[2] !== region || match[3] !== 'kms') {
      throw new KmsError(
        'InvalidSignatureException',
        `Credential should be scoped to a valid region and service kms, not '${match[2]}/${match[3]}'.`,
      );
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = String(req.headers['x-amz-target'] ?? '');
    operations.push(target);
    if (stalled) return;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let status = 200;
    let payload: Body;
    try {
      checkSignature(req);
      const op = target.startsWith('TrentService.') ? ops[target.slice('TrentService.'.length)] : undefined;
      if (req.method !== 'POST' || op === undefined) throw new KmsError('UnknownOperationException', '');
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      } catch {
        throw new KmsError('SerializationException', 'Malformed JSON');
      }
      payload = op(typeof body === 'object' && body !== null ? (body as Body) : {});
    } catch (err: unknown) {
      const e = err instanceof KmsError ? err : new KmsError('KMSInternalException', String(err), 500);
      status = e.status;
      payload = { __type: e.type, message: e.message };
    }
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
    res.end(JSON.stringify(payload));
  }

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region,
    accountId,
    credentials: { accessKeyId, secretAccessKey: 'stand-in-secret-not-checked' },
    operations,
    purgeKey: (keyId) => {
      const key = resolve(keyId, false);
      if (key.state !== 'PendingDeletion') throw new Error(`key ${keyId} is not pending deletion`);
      keys.delete(key.id);
      for (const [alias, target] of aliases) if (target === key.id) aliases.delete(alias);
    },
    stall: (on) => {
      stalled = on;
    },
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
