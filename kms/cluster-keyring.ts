/**
 * The local keyring of a cluster: its KEKs live in the cluster store, sealed under the cluster secret
 * (node/cluster/sealed.ts), so a KEK created on one node wraps and unwraps on every node. Names in the sealed store:
 *
 *   keyring/<kek>/<version>   one KEK version: JSON { "created": RFC 3339, "key": base64 of 32 bytes }
 *   keyring/<kek>/destroyed   the KEK was destroyed: JSON { "at", "created", "version" } (its versions are then deleted)
 *
 * A version, once written, never changes: each is created with a transaction on "absent" (`obtain`), so two nodes
 * that create or rotate at once never overwrite each other's key. Nothing is cached: every operation reads the store
 * (one list and one get), so a KEK destroyed on one node stops unwrapping on every node at once. Wraps use the same
 * format as the keyring file (kek-wrap.ts).
 */
import { randomBytes } from 'node:crypto';
import { FerryError, notFound } from '../common/index.js';
import { checkContext, checkKekName, checkPlaintext, checkWrappedKey } from './context.js';
import { openUnderKek, rewrapThrough, sealUnderKek } from './kek-wrap.js';
import type { Keyring, LocalKekInfo } from './keyring.js';
import { LOCAL_PROVIDER } from './local-keyring.js';
import type { DataKey, EncryptionContext, KekInfo, WrappedKey } from './types.js';

/** Name prefix of the keyring in the sealed store. */
export const KEYRING_SECRETS_PREFIX = 'keyring/';

/**
 * Named secrets shared by the nodes of a cluster, sealed in its store. `ClusterSecrets` (node/cluster/sealed.ts) has
 * this shape; kms/ takes it as a port because it depends on common/ only.
 */
export interface SharedSecrets {
  /** The secret `name`, or undefined. */
  get(name: string): Promise<Buffer | undefined>;
  /** Removes it (nothing when absent). */
  delete(name: string): Promise<void>;
  /** Names under a name prefix. */
  names(prefix: string): Promise<string[]>;
  /** The secret `name`; the first caller creates it with `make` (a transaction on "absent"). */
  obtain(name: string, make: () => Buffer): Promise<Buffer>;
}

const KEY_BYTES = 32;
const DESTROYED = 'destroyed';
/** `destroyedAt` reads the store again (in the background) at most this often. */
const REFRESH_MS = 5000;

/** A KEK version as sealed. */
interface VersionRecord {
  created: string;
  key: string;
}

/** The mark of a destroyed KEK: when, and what it was (its versions are gone). */
interface DestroyedMark {
  at: string;
  created: string;
  version: number;
}

function parseMark(bytes: Buffer): DestroyedMark {
  try {
    const mark = JSON.parse(bytes.toString('utf8')) as Partial<DestroyedMark>;
    return {
      at: typeof mark.at === 'string' ? mark.at : 'unknown time',
      created: typeof mark.created === 'string' ? mark.created : '',
      version: typeof mark.version === 'number' ? mark.version : 0,
    };
  } catch {
    return { at: 'unknown time', created: '', version: 0 };
  }
}

/** What the store holds of one KEK. */
export interface KekState {
  /** Version numbers, ascending. */
  versions: number[];
  destroyed: boolean;
}

export function versionName(kek: string, version: number): string {
  return `${KEYRING_SECRETS_PREFIX}${kek}/${version}`;
}

function destroyedName(kek: string): string {
  return `${KEYRING_SECRETS_PREFIX}${kek}/${DESTROYED}`;
}

/** The sealed bytes of a KEK version. */
export function versionBytes(created: string, key: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ created, key: key.toString('base64') } satisfies VersionRecord), 'utf8');
}

function parseVersion(name: string, bytes: Buffer): { created: string; key: Buffer } {
  try {
    const record = JSON.parse(bytes.toString('utf8')) as Partial<VersionRecord>;
    const key = Buffer.from(String(record.key), 'base64');
    if (typeof record.created !== 'string' || key.length !== KEY_BYTES) throw new Error('bad record');
    return { created: record.created, key };
  } catch {
    // No cause: a parse error would quote the text, which holds key material.
    throw new FerryError('DATA_CORRUPTION', `the cluster keyring's "${name}" is not a KEK version`);
  } finally {
    bytes.fill(0);
  }
}

/** The key bytes of a sealed version, for comparing KEKs without parsing twice. */
export function keyOfVersion(name: string, bytes: Buffer): Buffer {
  return parseVersion(name, bytes).key;
}

/** Groups `keyring/<kek>/<x>` names by KEK. */
export function statesOf(names: readonly string[]): Map<string, KekState> {
  const states = new Map<string, KekState>();
  for (const name of names) {
    const [kek, leaf] = name.slice(KEYRING_SECRETS_PREFIX.length).split('/');
    if (kek === undefined || leaf === undefined) continue;
    const state = states.get(kek) ?? { versions: [], destroyed: false };
    if (leaf === DESTROYED) state.destroyed = true;
    else if (/^[1-9][0-9]*$/.test(leaf)) state.versions.push(Number(leaf));
    states.set(kek, state);
  }
  for (const state of states.values()) state.versions.sort((a, b) => a - b);
  return states;
}

/** The local keyring of a cluster, over its sealed store. */
export class ClusterKeyring implements Keyring {
  readonly name = LOCAL_PROVIDER;
  /** KEKs this process saw destroyed (for `destroyedAt`, which does no I/O). */
  private readonly seenDestroyed = new Map<string, string>();
  private closed = false;
  private refreshedAt = 0;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly secrets: SharedSecrets) {}

  async createKek(name: string): Promise<LocalKekInfo> {
    checkKekName(name, 'name');
    this.checkOpen();
    const state = await this.state(name);
    if (state.versions.length > 0 || state.destroyed) {
      throw new FerryError('ALREADY_EXISTS', `KEK "${name}" already exists`);
    }
    const created = new Date().toISOString();
    if (!(await this.addVersion(name, 1, created))) {
      throw new FerryError('ALREADY_EXISTS', `KEK "${name}" already exists (another node created it just now)`);
    }
    return { id: name, version: 1, created, destroyed: false };
  }

  async rotateKek(name: string): Promise<LocalKekInfo> {
    checkKekName(name, 'name');
    this.checkOpen();
    for (;;) {
      const state = await this.liveState(name);
      const version = (state.versions.at(-1) ?? 0) + 1;
      // Lost to a rotation on another node: rotate again, so that this call has a version of its own.
      if (await this.addVersion(name, version, new Date().toISOString()))
        return this.info(name, { ...state, versions: [...state.versions, version] });
    }
  }

  async unrotateKek(name: string, version: number): Promise<LocalKekInfo> {
    checkKekName(name, 'name');
    this.checkOpen();
    const state = await this.liveState(name);
    const newest = state.versions.at(-1);
    if (newest === undefined || newest !== version || state.versions.length < 2) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `KEK "${name}" is at version ${newest ?? 0}, not ${version}: only a newest version that is not the first can be taken back`,
      );
    }
    await this.secrets.delete(versionName(name, version));
    return this.info(name, { ...state, versions: state.versions.slice(0, -1) });
  }

  /**
   * Destroys KEK `name` on every node: the mark first (unwraps stop), then every version's sealed bytes. A destroy
   * cut short is finished by the next one. The store's history (etcd's until compaction) still holds the sealed
   * bytes, and so do copies of the store: docs/KEYS.md.
   */
  async destroyKek(name: string): Promise<void> {
    checkKekName(name, 'name');
    this.checkOpen();
    const state = await this.state(name);
    if (state.versions.length === 0 && !state.destroyed) throw this.missing(name);
    const { created, version } = await this.info(name, state);
    const mark = await this.secrets.obtain(destroyedName(name), () =>
      Buffer.from(JSON.stringify({ at: new Date().toISOString(), created, version } satisfies DestroyedMark)),
    );
    this.seenDestroyed.set(name, parseMark(mark).at);
    for (const version of state.versions) await this.secrets.delete(versionName(name, version));
  }

  /**
   * When KEK `name` was destroyed, as this process last read it (a destroy on another node shows after the next
   * read: every call that touches the KEK, `listKeks`, `refresh`, and a background `refresh` that this call starts
   * when the last one is over 5 s old).
   */
  destroyedAt(name: string): string | undefined {
    if (!this.closed && this.refreshing === undefined && Date.now() - this.refreshedAt >= REFRESH_MS) {
      this.refreshing = this.refresh()
        .catch(() => undefined)
        .finally(() => {
          this.refreshing = undefined;
        });
    }
    return this.seenDestroyed.get(name);
  }

  /** Reads which KEKs are destroyed now (for `destroyedAt`). */
  async refresh(): Promise<void> {
    this.refreshedAt = Date.now();
    const states = statesOf(await this.secrets.names(KEYRING_SECRETS_PREFIX));
    for (const [name, state] of states) {
      if (state.destroyed && !this.seenDestroyed.has(name)) await this.mark(name);
    }
  }

  async listKeks(): Promise<LocalKekInfo[]> {
    this.checkOpen();
    const states = statesOf(await this.secrets.names(KEYRING_SECRETS_PREFIX));
    const out: LocalKekInfo[] = [];
    for (const name of [...states.keys()].sort()) {
      const state = states.get(name);
      if (state !== undefined) out.push(await this.info(name, state));
    }
    return out;
  }

  async describeKek(kek: string): Promise<KekInfo> {
    checkKekName(kek);
    this.checkOpen();
    const state = await this.liveState(kek);
    return { id: kek, version: state.versions.at(-1) ?? 0 };
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
    const state = await this.liveState(kek);
    const version = state.versions.at(-1);
    if (version === undefined) throw new FerryError('INTERNAL', `KEK "${kek}" has no usable version`);
    const key = await this.versionKey(kek, version);
    try {
      return {
        provider: LOCAL_PROVIDER,
        kek_id: kek,
        kek_version: version,
        ciphertext: sealUnderKek(key, kek, version, plaintext, context),
      };
    } finally {
      key.fill(0);
    }
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
    const state = await this.liveState(w.kek_id);
    if (!state.versions.includes(w.kek_version)) throw notFound(`KEK "${w.kek_id}" has no version ${w.kek_version}`);
    const key = await this.versionKey(w.kek_id, w.kek_version);
    try {
      return openUnderKek(key, w.kek_id, w.kek_version, w.ciphertext, context);
    } finally {
      key.fill(0);
    }
  }

  rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    return rewrapThrough(this, wrapped, context);
  }

  /** Nothing is held in memory but the names of destroyed KEKs; later calls fail with FAILED_PRECONDITION. */
  async close(): Promise<void> {
    this.closed = true;
    await this.refreshing;
  }

  /** Creates version `version` of `kek` unless it exists; whether this call created it. */
  private async addVersion(kek: string, version: number, created: string): Promise<boolean> {
    const key = randomBytes(KEY_BYTES);
    const mine = versionBytes(created, key);
    try {
      const stored = await this.secrets.obtain(versionName(kek, version), () => mine);
      const same = stored.equals(mine);
      stored.fill(0);
      return same;
    } finally {
      mine.fill(0);
      key.fill(0);
    }
  }

  private async versionKey(kek: string, version: number): Promise<Buffer> {
    const name = versionName(kek, version);
    const bytes = await this.secrets.get(name);
    if (bytes === undefined) {
      // Destroyed (or taken back) between the listing and the read.
      const state = await this.liveState(kek);
      throw notFound(`KEK "${kek}" has no version ${version} (its newest is ${state.versions.at(-1) ?? 0})`);
    }
    return keyOfVersion(name, bytes);
  }

  private async state(kek: string): Promise<KekState> {
    const states = statesOf(await this.secrets.names(`${KEYRING_SECRETS_PREFIX}${kek}/`));
    return states.get(kek) ?? { versions: [], destroyed: false };
  }

  /** The KEK's state; NOT_FOUND when unknown, PERMISSION_DENIED when destroyed. */
  private async liveState(kek: string): Promise<KekState> {
    const state = await this.state(kek);
    if (state.destroyed) {
      const when = (await this.mark(kek)).at;
      throw new FerryError(
        'PERMISSION_DENIED',
        `KEK "${kek}" was destroyed (${when}); data protected by it is unreadable and cannot be recovered`,
      );
    }
    if (state.versions.length === 0) throw this.missing(kek);
    return state;
  }

  /** The KEK's destroyed mark (read now); remembered for `destroyedAt`. */
  private async mark(kek: string): Promise<DestroyedMark> {
    const bytes = await this.secrets.get(destroyedName(kek));
    const mark = bytes === undefined ? { at: 'unknown time', created: '', version: 0 } : parseMark(bytes);
    this.seenDestroyed.set(kek, mark.at);
    return mark;
  }

  private async info(name: string, state: KekState): Promise<LocalKekInfo> {
    if (state.destroyed) {
      const mark = await this.mark(name);
      return { id: name, version: mark.version, created: mark.created, destroyed: true, destroyed_at: mark.at };
    }
    this.seenDestroyed.delete(name);
    const first = state.versions[0];
    let created = '';
    const bytes = first === undefined ? undefined : await this.secrets.get(versionName(name, first));
    if (bytes !== undefined) {
      const version = parseVersion(name, bytes);
      version.key.fill(0);
      created = version.created;
    }
    return { id: name, version: state.versions.at(-1) ?? 0, created, destroyed: false };
  }

  private missing(name: string): FerryError {
    return notFound(`no KEK named "${name}" in the cluster's keyring; list them, or create it first`);
  }

  private checkOpen(): void {
    if (this.closed) throw new FerryError('FAILED_PRECONDITION', 'the cluster keyring is closed');
  }
}
