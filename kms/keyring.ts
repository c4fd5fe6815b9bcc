/**
 * The local keyring's contract (KEK provider 'local'), which its two backends implement: `LocalKeyring`, one
 * encrypted file on a node alone (local-keyring.ts), and `ClusterKeyring`, the KEKs sealed in the cluster store so
 * that every node of a cluster wraps and unwraps with them (cluster-keyring.ts).
 */
import type { KekInfo, KeyProvider } from './types.js';

/** What `listKeks` reports of a KEK (never key material). */
export interface LocalKekInfo extends KekInfo {
  /** When the KEK was created, RFC 3339. */
  created: string;
  /** Whether it was destroyed; data wrapped under it is then unreadable. */
  destroyed: boolean;
  /** When it was destroyed, RFC 3339. */
  destroyed_at?: string;
}

/** The local keyring: a key provider whose KEKs Ferry keeps itself. */
export interface Keyring extends KeyProvider {
  /** Every KEK, destroyed ones included, in name order. */
  listKeks(): Promise<LocalKekInfo[]>;
  /** Creates KEK `name` with version 1. ALREADY_EXISTS when the name is taken (also by a destroyed KEK). */
  createKek(name: string): Promise<LocalKekInfo>;
  /** Adds a new version to KEK `name`; new wraps use it, older versions still unwrap. */
  rotateKek(name: string): Promise<LocalKekInfo>;
  /** Takes back version `version`, the newest and not the only one. FAILED_PRECONDITION otherwise. */
  unrotateKek(name: string, version: number): Promise<LocalKekInfo>;
  /** Destroys KEK `name` (crypto-shredding): whatever it wrapped is unreadable from then on. */
  destroyKek(name: string): Promise<void>;
  /** When KEK `name` was destroyed, as far as this process knows, without I/O; undefined when live or unknown. */
  destroyedAt(name: string): string | undefined;
  /** Wipes keys held in memory; later calls fail with FAILED_PRECONDITION. */
  close(): Promise<void>;
}

/** One KEK with its key bytes, as moved from a node's keyring file into its cluster's keyring. Never log it. */
export interface ExportedKek {
  name: string;
  created: string;
  /** When it was destroyed (then no version has a key). */
  destroyed?: string;
  versions: { version: number; created: string; key?: Buffer }[];
}
