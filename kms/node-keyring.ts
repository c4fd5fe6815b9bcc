/**
 * A node's local keyring, as `ferry node start` opens it: alone, the keyring file under its data directory
 * (default-keyring.ts, as always); in a cluster, the cluster's keyring (cluster-keyring.ts), into which the KEKs of
 * the node's own keyring file, if it has one from before it joined, are first moved. A KEK the cluster lacks is
 * added; one it has with the same key bytes is left alone; one it has with different bytes is never overwritten: the
 * start fails with FAILED_PRECONDITION naming it. The keyring file itself is left as it is.
 */
import { join } from 'node:path';
import { FerryError, isFerryError, pathExists } from '../common/index.js';
import {
  ClusterKeyring,
  KEYRING_SECRETS_PREFIX,
  keyOfVersion,
  type SharedSecrets,
  statesOf,
  versionBytes,
  versionName,
} from './cluster-keyring.js';
import { DEFAULT_KEK, openDefaultKeyring } from './default-keyring.js';
import type { ExportedKek, Keyring } from './keyring.js';
import { LocalKeyring } from './local-keyring.js';

/** A log line writer (names and paths only, never key material). */
export type KeyringLog = (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;

/** Options of `openNodeKeyring`. */
export interface NodeKeyringOptions {
  /** The node's data directory: its keyring file is `<dataDir>/keyring/keyring.bin` (key `master.key`). */
  dataDir: string;
  /** The cluster's sealed secrets (node/cluster's ClusterSecrets). Default none: a node alone, the keyring file. */
  secrets?: SharedSecrets;
  /** Where to say what happened. Default nowhere. */
  log?: KeyringLog;
}

/** What `adoptLocalKeks` did, by KEK name. */
export interface AdoptedKeks {
  /** KEKs (or versions of them) added to the cluster. */
  added: string[];
  /** KEKs the cluster already had, with the same key bytes. */
  present: string[];
  /** Live here but destroyed in the cluster: not brought back. */
  destroyedInCluster: string[];
}

function conflictError(names: readonly string[], path: string): FerryError {
  const list = names.map((n) => `"${n}"`).join(', ');
  return new FerryError(
    'FAILED_PRECONDITION',
    `KEK ${list} of this node's keyring (${path}) differs from the cluster's KEK of the same name, which is kept: ` +
      'what this node wrapped under it (encrypted volumes, credentials, backups) would not open in the cluster. If ' +
      `nothing on this node uses it, move ${path} aside and start the node again; otherwise run the node alone ` +
      '(without the cluster settings), back its volumes up to the cloud, and restore them in the cluster.',
  );
}

/**
 * Moves a node's own KEKs (`local`, from its keyring file at `path`) into its cluster's keyring: every version the
 * cluster lacks is added (a transaction on "absent"); a version it has must hold the same bytes. FAILED_PRECONDITION
 * naming every KEK that differs, before anything is added. A KEK destroyed here adds nothing; one destroyed in the
 * cluster is not brought back. Wipes the key bytes of `local` when done.
 */
export async function adoptLocalKeks(
  local: readonly ExportedKek[],
  secrets: SharedSecrets,
  path: string,
): Promise<AdoptedKeks> {
  const result: AdoptedKeks = { added: [], present: [], destroyedInCluster: [] };
  try {
    const states = statesOf(await secrets.names(KEYRING_SECRETS_PREFIX));
    const conflicts: string[] = [];
    const plan: { kek: string; version: number; created: string; key: Buffer }[] = [];
    for (const kek of local) {
      const live = kek.versions.filter((v) => v.key !== undefined);
      if (kek.destroyed !== undefined || live.length === 0) continue;
      const state = states.get(kek.name);
      if (state?.destroyed === true) {
        result.destroyedInCluster.push(kek.name);
        continue;
      }
      let same = 0;
      let differs = false;
      const missing: typeof plan = [];
      for (const v of live) {
        const key = v.key as Buffer;
        if (state?.versions.includes(v.version) === true) {
          const name = versionName(kek.name, v.version);
          const bytes = await secrets.get(name);
          const theirs = bytes === undefined ? undefined : keyOfVersion(name, bytes);
          if (theirs?.equals(key) === true) same++;
          else differs = true;
          theirs?.fill(0);
        } else {
          missing.push({ kek: kek.name, version: v.version, created: v.created, key });
        }
      }
      // A cluster KEK of this name that shares no version with ours is another KEK.
      if (differs || (state !== undefined && state.versions.length > 0 && same === 0)) conflicts.push(kek.name);
      else if (missing.length === 0) result.present.push(kek.name);
      else {
        plan.push(...missing);
        result.added.push(kek.name);
      }
    }
    if (conflicts.length > 0) throw conflictError(conflicts, path);
    for (const { kek, version, created, key } of plan) {
      const mine = versionBytes(created, key);
      const stored = await secrets.obtain(versionName(kek, version), () => mine);
      const theirs = keyOfVersion(versionName(kek, version), stored);
      const same = theirs.equals(key);
      theirs.fill(0);
      mine.fill(0);
      // Another node added a different KEK of this name meanwhile.
      if (!same) throw conflictError([kek], path);
    }
    return result;
  } finally {
    for (const kek of local) for (const v of kek.versions) v.key?.fill(0);
  }
}

/** Opens the node's keyring file when there is one (never creating it); undefined when there is none. */
async function existingKeyringFile(dataDir: string): Promise<{ keyring: LocalKeyring; path: string } | undefined> {
  const dir = join(dataDir, 'keyring');
  const path = join(dir, 'keyring.bin');
  const keyFile = join(dir, 'master.key');
  if (!(await pathExists(path))) return undefined;
  if (!(await pathExists(keyFile))) {
    throw new FerryError(
      'FAILED_PRECONDITION',
      `${keyFile} is missing but ${path} exists: restore master.key from your backup (its KEKs move into the cluster's keyring)`,
    );
  }
  return { keyring: await LocalKeyring.open({ path, keyFile }), path };
}

/**
 * The node's keyring: without `secrets`, the keyring file (created on the first start, with KEK `default`); with
 * them, the cluster's keyring, after the node's own KEKs are adopted (`adoptLocalKeks`), with KEK `default` created
 * by the first node of the cluster.
 */
export async function openNodeKeyring(options: NodeKeyringOptions): Promise<Keyring> {
  const { secrets } = options;
  const log = options.log ?? (() => undefined);
  if (secrets === undefined) return openDefaultKeyring(options.dataDir);
  const file = await existingKeyringFile(options.dataDir);
  if (file !== undefined) {
    let adopted: AdoptedKeks;
    try {
      adopted = await adoptLocalKeks(await file.keyring.exportKeks(), secrets, file.path);
    } finally {
      await file.keyring.close();
    }
    log('info', "this node's KEKs are in the cluster's keyring", { keyring_file: file.path, ...adopted });
    if (adopted.destroyedInCluster.length > 0) {
      log('warn', `KEKs destroyed in the cluster still have their bytes in this node's keyring file: remove it`, {
        keyring_file: file.path,
        keks: adopted.destroyedInCluster,
      });
    }
  }
  const keyring = new ClusterKeyring(secrets);
  try {
    await keyring.createKek(DEFAULT_KEK);
  } catch (err: unknown) {
    if (!isFerryError(err, 'ALREADY_EXISTS')) throw err;
  }
  log('info', 'keyring', { backend: 'cluster store' });
  return keyring;
}
