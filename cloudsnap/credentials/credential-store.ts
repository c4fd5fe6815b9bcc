/**
 * Cloud credentials in the cluster store, one record per credential under `/ferry/credentials/<id>`. The record holds
 * the shown fields in clear and the secret fields sealed (see sealing.ts), so the cluster store never holds a secret
 * in clear. `inspect` never returns a secret; `resolve` (internal) does. A name is claimed under
 * `/ferry/credential-names/<name>` in the create's transaction, so two nodes creating one name at once cannot both
 * succeed (records stored before those claims existed are still found by the list check).
 */
import { randomUUID } from 'node:crypto';
import { FerryError, isFerryError, notFound } from '../../common/index.js';
import { DEFAULT_KEK, type KeyProvider, type KeySource, LOCAL_PROVIDER, lookupOf } from '../../kms/index.js';
import type { ClusterStore } from '../../node/index.js';
import type { CallOptions } from '../store/index.js';
import { checkAccess, type OpenObjectStore, storeCredential } from './access.js';
import { checkCreateRequest } from './check.js';
import { type CheckedDirectory, DirectoryPolicy, type DirectoryPolicyOptions } from './directory-policy.js';
import { openSecrets, type SealedSecrets, sealSecrets } from './sealing.js';
import type { CreateCredentialRequest, Credential, CredentialInfo } from './types.js';

/** Key prefix of credential records in the cluster store. */
export const CREDENTIALS_PREFIX = '/ferry/credentials/';
/** Key prefix of the claims of credential names. */
export const CREDENTIAL_NAMES_PREFIX = '/ferry/credential-names/';

function nameKey(name: string): string {
  return `${CREDENTIAL_NAMES_PREFIX}${encodeURIComponent(name)}`;
}

function nameTaken(name: string): FerryError {
  return new FerryError('ALREADY_EXISTS', `a credential named "${name}" already exists`);
}

/** A stored credential: its shown fields and its sealed secrets. */
export interface CredentialRecord extends CredentialInfo {
  sealed: SealedSecrets;
}

export interface CredentialStoreOptions {
  /** KEK that protects credentials' secrets at rest. Default `default`. */
  secretsKek?: string;
  /**
   * Opens the object store `validate` checks. Default: cloudsnap/store's `openObjectStore`, loaded on first use so
   * that processes which never validate do not load the cloud SDKs.
   */
  openStore?: OpenObjectStore;
  /**
   * The node's key providers, to check that a new credential's `kek` exists in its `key_provider`. Default: the
   * provider given to the constructor only (so only 'local' credentials can be created).
   */
  providers?: KeySource;
  /**
   * Where directory credentials may point (the node's directory roots and data directory). Default: no roots, so
   * only admins' directory credentials, outside the system directories (see directory-policy.ts).
   */
  directories?: DirectoryPolicy | DirectoryPolicyOptions;
}

/** Who asks for a new credential. */
export interface CreateCredentialOptions {
  /**
   * Whether the caller is a `system.admin`, who may point directory credentials outside the roots. Default true:
   * in-process callers are trusted; the API passes the caller's role.
   */
  admin?: boolean;
}

function infoOf(record: CredentialRecord): CredentialInfo {
  const { sealed: _sealed, ...info } = record;
  return info;
}

/** Create, enumerate, inspect, delete, resolve and validate cloud credentials. */
export class CredentialStore {
  private readonly secretsKek: string;
  private readonly openStore: OpenObjectStore | undefined;
  private readonly providers: KeySource;
  /** Where directory credentials may point. */
  readonly directories: DirectoryPolicy;
  /** Serialises create and delete, so two creates of one name cannot both succeed. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: ClusterStore,
    private readonly keys: KeyProvider,
    options: CredentialStoreOptions = {},
  ) {
    this.secretsKek = options.secretsKek ?? DEFAULT_KEK;
    this.openStore = options.openStore;
    this.providers = options.providers ?? keys;
    const directories = options.directories ?? {};
    this.directories = directories instanceof DirectoryPolicy ? directories : new DirectoryPolicy(directories);
  }

  /**
   * Stores a new credential and returns it without secrets. INVALID_ARGUMENT naming the field for bad input
   * (including a `kek` the key provider does not know, a directory that does not exist or is not writable),
   * PERMISSION_DENIED for a directory the caller may not use, ALREADY_EXISTS when the name is taken; nothing is
   * stored then, and a directory made for it is removed again.
   */
  create(request: CreateCredentialRequest, options: CreateCredentialOptions = {}): Promise<CredentialInfo> {
    return this.serialised(async () => {
      const checked = checkCreateRequest(request);
      await this.checkKek(checked.info.kek, checked.info.key_provider ?? LOCAL_PROVIDER);
      const records = await this.records();
      if (records.some((r) => r.name === checked.info.name)) throw nameTaken(checked.info.name);
      const dir = checked.info.directory_credential;
      let made: CheckedDirectory | undefined;
      if (dir !== undefined) {
        made = await this.directories.check(dir.path, checked.info.bucket, checked.info.prefix, {
          admin: options.admin ?? true,
          create: checked.createDirectory === true,
        });
        if (made.outsideRoots) dir.outside_roots = true;
      }
      try {
        const id = randomUUID();
        const info: CredentialInfo = { credential_id: id, ...checked.info, created: new Date().toISOString() };
        const sealed = await sealSecrets(this.keys, this.secretsKek, id, checked.secrets);
        const record: CredentialRecord = { ...info, sealed };
        const claim = nameKey(info.name);
        const result = await this.store.txn(
          [{ key: claim, modRevision: 0 }],
          [
            { op: 'put', key: claim, value: { credential_id: id } },
            { op: 'put', key: `${CREDENTIALS_PREFIX}${id}`, value: record },
          ],
        );
        if (!result.succeeded) throw nameTaken(info.name);
        return info;
      } catch (err: unknown) {
        if (made !== undefined) await this.directories.undo(made);
        throw err;
      }
    });
  }

  /** Ids of every credential, in name order (SdkCredentialEnumerateResponse). */
  async enumerate(): Promise<string[]> {
    return (await this.list()).map((c) => c.credential_id);
  }

  /** Every credential without secrets, in name order. */
  async list(): Promise<CredentialInfo[]> {
    const records = await this.records();
    return records.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(infoOf);
  }

  /** One credential by id or name, without secrets. NOT_FOUND when there is none. */
  async inspect(idOrName: string): Promise<CredentialInfo> {
    return infoOf(await this.find(idOrName));
  }

  /** Deletes a credential by id or name. NOT_FOUND when there is none. */
  delete(idOrName: string): Promise<void> {
    return this.serialised(async () => {
      const record = await this.find(idOrName);
      await this.store.commit([
        { op: 'delete', key: `${CREDENTIALS_PREFIX}${record.credential_id}` },
        { op: 'delete', key: nameKey(record.name) },
      ]);
    });
  }

  /** For internal use only: the credential with its secrets decrypted. Never send this to a client or a log. */
  async resolve(idOrName: string): Promise<Credential> {
    const record = await this.find(idOrName);
    const dir = record.directory_credential;
    if (dir !== undefined) {
      // Again at each use: a symlink swapped in since, or a record stored before the rules, is refused here.
      await this.directories.check(dir.path, record.bucket, record.prefix, {
        admin: dir.outside_roots === true,
        use: true,
        field: `credential ${record.name}: directory_credential.path`,
      });
    }
    const secrets = await openSecrets(this.keys, record.credential_id, record.sealed, `"${record.name}"`);
    const {
      sealed: _sealed,
      aws_credential: aws,
      azure_credential: azure,
      google_credential: google,
      ...rest
    } = record;
    const credential: Credential = rest;
    if (aws !== undefined) credential.aws_credential = { ...aws, secret_key: secrets.secret_key ?? '' };
    if (azure !== undefined) credential.azure_credential = { ...azure, account_key: secrets.account_key ?? '' };
    if (google !== undefined) {
      credential.google_credential = {
        ...google,
        secret_key: secrets.secret_key ?? '',
        ...(secrets.json_key !== undefined && { json_key: secrets.json_key }),
      };
    }
    return credential;
  }

  /**
   * Checks that the credential reaches its bucket for real: lists one page, then writes, reads and deletes a probe
   * object under its prefix. Rejects with the object store's FerryError (NOT_FOUND for a missing bucket or
   * directory, UNAUTHENTICATED / PERMISSION_DENIED for bad keys, UNAVAILABLE when unreachable).
   */
  async validate(idOrName: string, options: CallOptions = {}): Promise<void> {
    const credential = await this.resolve(idOrName);
    const open = this.openStore ?? (await import('../store/open.js')).openObjectStore;
    await checkAccess(await open(storeCredential(credential)), options);
  }

  private async checkKek(kek: string, providerName: string): Promise<void> {
    let provider: KeyProvider;
    try {
      provider = lookupOf(this.providers)(providerName);
    } catch (err: unknown) {
      if (!isFerryError(err, 'FAILED_PRECONDITION')) throw err;
      throw new FerryError('INVALID_ARGUMENT', `key_provider: ${err.message}`, { field: 'key_provider', cause: err });
    }
    try {
      await provider.describeKek(kek);
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND') || isFerryError(err, 'PERMISSION_DENIED')) {
        throw new FerryError('INVALID_ARGUMENT', `kek: ${err.message}`, { field: 'kek', cause: err });
      }
      throw err;
    }
  }

  private async records(): Promise<CredentialRecord[]> {
    return (await this.store.list<CredentialRecord>(CREDENTIALS_PREFIX)).map((kv) => kv.value);
  }

  private async find(idOrName: string): Promise<CredentialRecord> {
    const byId = idOrName.includes('/')
      ? undefined
      : await this.store.get<CredentialRecord>(CREDENTIALS_PREFIX + idOrName);
    if (byId !== undefined) return byId;
    const byName = (await this.records()).find((r) => r.name === idOrName);
    if (byName === undefined) {
      throw notFound(`no credential with id or name "${idOrName}"; list them with GET /v1/credentials`);
    }
    return byName;
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task, task);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
