/**
 * The local keyring: a KeyProvider ('local') whose KEKs live in one encrypted file on the node (see keyring-file.ts
 * for its layout). Each KEK has versions of 32 random bytes; new wraps use the newest, old ones still unwrap.
 * Destroying a KEK removes every version's bytes from the file (crypto-shredding): whatever was wrapped under it is
 * unreadable from then on. Wrap format: AES-256-GCM under the KEK version with a random 96-bit nonce, additional data
 * = canonical JSON of { kek, version, context }, ciphertext = base64(nonce | tag | ct).
 *
 * One process owns a keyring file at a time (the node daemon); writes within it are serialised.
 */
import { randomBytes } from 'node:crypto';
import { FerryError, notFound } from '../common/index.js';
import { checkContext, checkKekName, checkPlaintext, checkWrappedKey } from './context.js';
import { openUnderKek, rewrapThrough, sealUnderKek } from './kek-wrap.js';
import type { ExportedKek, Keyring, LocalKekInfo } from './keyring.js';
import {
  decodeKeyring,
  encodeKeyring,
  fileKey,
  type KekRecord,
  type KeyringBody,
  type KeyringHeader,
  type KeySource,
  newHeader,
  parseHeader,
} from './keyring-file.js';
import { isMissingFile, readPrivateFile, writePrivateFile } from './private-file.js';
import type { DataKey, EncryptionContext, KekInfo, WrappedKey } from './types.js';

export type { LocalKekInfo } from './keyring.js';

/** The provider name in every WrappedKey this keyring makes. */
export const LOCAL_PROVIDER = 'local';

const KEY_BYTES = 32;

/** How to open a keyring. Exactly one of `passphrase` and `keyFile` is required. */
export interface LocalKeyringOptions {
  /** Path of the keyring file (mode 0600). */
  path: string;
  /** Passphrase the file key is derived from with scrypt (N=2^15, r=8, p=1, salt in the file header). */
  passphrase?: string;
  /** Path of a file holding the raw 32-byte file key (mode 0600). */
  keyFile?: string;
  /** Create an empty keyring when `path` does not exist. Default false (a missing file is NOT_FOUND). */
  create?: boolean;
}

interface KekVersion {
  version: number;
  created: string;
  /** Undefined once destroyed. */
  key: Buffer | undefined;
}

interface Kek {
  created: string;
  destroyed: string | undefined;
  versions: KekVersion[];
}

async function keySource(options: LocalKeyringOptions): Promise<KeySource> {
  const given = (options.passphrase !== undefined ? 1 : 0) + (options.keyFile !== undefined ? 1 : 0);
  if (given !== 1) {
    throw new FerryError('INVALID_ARGUMENT', 'keyring: give exactly one of passphrase and keyFile', {
      field: options.passphrase === undefined ? 'passphrase' : 'keyFile',
    });
  }
  if (options.passphrase !== undefined) {
    if (options.passphrase.length === 0) {
      throw new FerryError('INVALID_ARGUMENT', 'passphrase: must not be empty', { field: 'passphrase' });
    }
    return { kind: 'passphrase', passphrase: options.passphrase };
  }
  const path = options.keyFile ?? '';
  const key = await readPrivateFile(path, 'key file');
  if (key.length !== KEY_BYTES) {
    key.fill(0);
    throw new FerryError('FAILED_PRECONDITION', `key file ${path} must hold exactly ${KEY_BYTES} bytes`);
  }
  return { kind: 'key-file', key };
}

function fromRecord(record: KekRecord): Kek {
  return {
    created: record.created,
    destroyed: record.destroyed,
    versions: record.versions.map((v) => ({
      version: v.version,
      created: v.created,
      key: v.key === undefined ? undefined : Buffer.from(v.key, 'base64'),
    })),
  };
}

function toBody(keks: ReadonlyMap<string, Kek>): KeyringBody {
  const body: KeyringBody = { keks: {} };
  for (const [name, kek] of keks) {
    const record: KekRecord = {
      created: kek.created,
      versions: kek.versions.map((v) => ({
        version: v.version,
        created: v.created,
        ...(v.key !== undefined && { key: v.key.toString('base64') }),
      })),
    };
    if (kek.destroyed !== undefined) record.destroyed = kek.destroyed;
    body.keks[name] = record;
  }
  return body;
}

function destroyedError(name: string, when: string): FerryError {
  return new FerryError(
    'PERMISSION_DENIED',
    `KEK "${name}" was destroyed (${when}); data protected by it is unreadable and cannot be recovered`,
  );
}

/** The local keyring provider. Open it with `LocalKeyring.open`. */
export class LocalKeyring implements Keyring {
  readonly name = LOCAL_PROVIDER;
  private keks: Map<string, Kek>;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    /** Path of the keyring file. */
    readonly path: string,
    private readonly header: KeyringHeader,
    private readonly key: Buffer,
    keks: Map<string, Kek>,
  ) {
    this.keks = keks;
  }

  /**
   * Opens the keyring at `options.path` (creating an empty one with `create`). Rejects with NOT_FOUND (no file and
   * no `create`), FAILED_PRECONDITION (file or key file readable by group/others, wrong kind of key),
   * UNAUTHENTICATED (wrong passphrase or key file, or an altered file), INVALID_ARGUMENT (bad options).
   */
  static async open(options: LocalKeyringOptions): Promise<LocalKeyring> {
    const source = await keySource(options);
    try {
      let file: Buffer | undefined;
      try {
        file = await readPrivateFile(options.path, 'keyring file');
      } catch (err: unknown) {
        if (!(err instanceof FerryError && err.code === 'NOT_FOUND' && isMissingFile(err.cause))) throw err;
        if (options.create !== true) {
          throw new FerryError('NOT_FOUND', `no keyring at ${options.path}; open it with create: true to make one`, {
            cause: err,
          });
        }
      }
      if (file === undefined) {
        const header = newHeader(source.kind);
        const key = await fileKey(header, source, options.path);
        await writePrivateFile(options.path, encodeKeyring(header, key, { keks: {} }), true);
        return new LocalKeyring(options.path, header, key, new Map());
      }
      const header = parseHeader(file, options.path);
      const key = await fileKey(header, source, options.path);
      try {
        const body = decodeKeyring(header, key, file, options.path);
        const keks = new Map(Object.entries(body.keks).map(([name, record]) => [name, fromRecord(record)]));
        return new LocalKeyring(options.path, header, key, keks);
      } catch (err: unknown) {
        key.fill(0);
        throw err;
      }
    } finally {
      if (source.kind === 'key-file') source.key.fill(0);
    }
  }

  /** Creates KEK `name` with version 1. ALREADY_EXISTS when the name is taken (also by a destroyed KEK). */
  createKek(name: string): Promise<LocalKekInfo> {
    checkKekName(name, 'name');
    return this.mutate(() => {
      if (this.keks.has(name)) throw new FerryError('ALREADY_EXISTS', `KEK "${name}" already exists`);
      const created = new Date().toISOString();
      const kek: Kek = { created, destroyed: undefined, versions: [{ version: 1, created, key: randomBytes(32) }] };
      return { name, kek, after: () => undefined };
    });
  }

  /** Adds a new version to KEK `name`; new wraps use it, older versions still unwrap. */
  rotateKek(name: string): Promise<LocalKekInfo> {
    checkKekName(name, 'name');
    return this.mutate(() => {
      const current = this.liveKek(name);
      const version = (current.versions.at(-1)?.version ?? 0) + 1;
      const entry = { version, created: new Date().toISOString(), key: randomBytes(32) };
      return { name, kek: { ...current, versions: [...current.versions, entry] }, after: () => undefined };
    });
  }

  /**
   * Takes back version `version` of KEK `name`, which must be its newest and not its only one (a rotation that could
   * not rewrap everything under it rolls back with this): its bytes leave the file and are wiped from memory.
   * FAILED_PRECONDITION when `version` is not the newest.
   */
  unrotateKek(name: string, version: number): Promise<LocalKekInfo> {
    checkKekName(name, 'name');
    return this.mutate(() => {
      const current = this.liveKek(name);
      const newest = current.versions.at(-1);
      if (newest === undefined || newest.version !== version || current.versions.length < 2) {
        throw new FerryError(
          'FAILED_PRECONDITION',
          `KEK "${name}" is at version ${newest?.version ?? 0}, not ${version}: only a newest version that is not the first can be taken back`,
        );
      }
      return {
        name,
        kek: { ...current, versions: current.versions.slice(0, -1) },
        after: () => newest.key?.fill(0),
      };
    });
  }

  /**
   * Destroys KEK `name` (crypto-shredding): every version's bytes are removed from the keyring file and wiped from
   * memory. Unwrapping anything wrapped under it fails with PERMISSION_DENIED from then on. Copies of older keyring
   * files (backups of it) still hold the bytes, encrypted under the file key: destroy those too.
   */
  async destroyKek(name: string): Promise<void> {
    checkKekName(name, 'name');
    await this.mutate(() => {
      const current = this.kekNamed(name);
      if (current.destroyed !== undefined) return { name, kek: current, after: () => undefined };
      const kek: Kek = {
        ...current,
        destroyed: new Date().toISOString(),
        versions: current.versions.map((v) => ({ ...v, key: undefined })),
      };
      return {
        name,
        kek,
        after: () => {
          for (const v of current.versions) v.key?.fill(0);
        },
      };
    });
  }

  /**
   * Every KEK with copies of its key bytes, for moving them into a cluster's keyring (cluster-keyring.ts) when this
   * node joins one. The caller wipes the copies (`key.fill(0)`) and never logs them.
   */
  async exportKeks(): Promise<ExportedKek[]> {
    this.checkOpen();
    return [...this.keks.entries()].map(([name, kek]) => ({
      name,
      created: kek.created,
      ...(kek.destroyed !== undefined && { destroyed: kek.destroyed }),
      versions: kek.versions.map((v) => ({
        version: v.version,
        created: v.created,
        ...(v.key !== undefined && { key: Buffer.from(v.key) }),
      })),
    }));
  }

  /** When KEK `name` was destroyed (ISO-8601), or undefined when it is live or unknown. Reads memory only. */
  destroyedAt(name: string): string | undefined {
    return this.keks.get(name)?.destroyed;
  }

  /** Every KEK, destroyed ones included, in name order. */
  async listKeks(): Promise<LocalKekInfo[]> {
    this.checkOpen();
    return [...this.keks.keys()].sort().map((name) => this.info(name, this.kekNamed(name)));
  }

  async describeKek(kek: string): Promise<KekInfo> {
    checkKekName(kek);
    this.checkOpen();
    const found = this.liveKek(kek);
    return { id: kek, version: found.versions.at(-1)?.version ?? 0 };
  }

  async generateDataKey(kek: string, context: EncryptionContext): Promise<DataKey> {
    const plaintext = randomBytes(KEY_BYTES);
    return { plaintext, wrapped: await this.wrap(kek, plaintext, context) };
  }

  async wrap(kek: string, plaintext: Buffer, context: EncryptionContext): Promise<WrappedKey> {
    checkKekName(kek);
    checkPlaintext(plaintext);
    checkContext(context);
    this.checkOpen();
    const newest = this.liveKek(kek).versions.at(-1);
    if (newest?.key === undefined) throw new FerryError('INTERNAL', `KEK "${kek}" has no usable version`);
    const ciphertext = sealUnderKek(newest.key, kek, newest.version, plaintext, context);
    return { provider: LOCAL_PROVIDER, kek_id: kek, kek_version: newest.version, ciphertext };
  }

  async unwrap(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    const w = checkWrappedKey(wrapped);
    checkContext(context);
    this.checkOpen();
    if (w.provider !== LOCAL_PROVIDER) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `this key was wrapped by the "${w.provider}" key provider, not the local keyring; unwrap it there`,
      );
    }
    const kek = this.liveKek(w.kek_id);
    const version = kek.versions.find((v) => v.version === w.kek_version);
    if (version?.key === undefined) throw notFound(`KEK "${w.kek_id}" has no version ${w.kek_version}`);
    return openUnderKek(version.key, w.kek_id, w.kek_version, w.ciphertext, context);
  }

  rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    return rewrapThrough(this, wrapped, context);
  }

  /** Wipes the keys from memory; later calls fail with FAILED_PRECONDITION. */
  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    if (this.closed) return;
    this.closed = true;
    for (const kek of this.keks.values()) for (const v of kek.versions) v.key?.fill(0);
    this.key.fill(0);
    this.keks = new Map();
  }

  private checkOpen(): void {
    if (this.closed) throw new FerryError('FAILED_PRECONDITION', `keyring ${this.path} is closed`);
  }

  private kekNamed(name: string): Kek {
    const kek = this.keks.get(name);
    if (kek === undefined) {
      throw notFound(`no KEK named "${name}" in the local keyring; list them, or create it first`);
    }
    return kek;
  }

  /** The KEK, refusing a destroyed one with PERMISSION_DENIED. */
  private liveKek(name: string): Kek {
    const kek = this.kekNamed(name);
    if (kek.destroyed !== undefined) throw destroyedError(name, kek.destroyed);
    return kek;
  }

  private info(name: string, kek: Kek): LocalKekInfo {
    const info: LocalKekInfo = {
      id: name,
      version: kek.versions.at(-1)?.version ?? 0,
      created: kek.created,
      destroyed: kek.destroyed !== undefined,
    };
    if (kek.destroyed !== undefined) info.destroyed_at = kek.destroyed;
    return info;
  }

  /**
   * Runs one change after the previous ones: `change` names the new state of one KEK; the whole file is written
   * atomically before memory changes, so a failed write leaves both as they were. `after` runs once it is durable.
   */
  private mutate(change: () => { name: string; kek: Kek; after: () => void }): Promise<LocalKekInfo> {
    const run = async (): Promise<LocalKekInfo> => {
      this.checkOpen();
      const { name, kek, after } = change();
      const next = new Map(this.keks);
      next.set(name, kek);
      await writePrivateFile(this.path, encodeKeyring(this.header, this.key, toBody(next)));
      this.keks = next;
      after();
      return this.info(name, kek);
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
