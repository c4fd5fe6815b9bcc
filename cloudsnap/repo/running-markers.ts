/**
 * `running/<backup id>` markers (docs/FORMAT.md): a backup writes one first and removes it last, and garbage
 * collection deletes no condemned pack while a backup that started before the condemnation runs. Each marker says
 * which node and which process wrote it, so that a node, at start, clears the markers its own dead processes left
 * (kill -9, power loss), which would otherwise hold sweeps back until they are `staleMs` old (24 hours).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { isFerryError } from '../../common/index.js';
import type { Repository } from './repository.js';

/** Who runs a backup: the node and the process of that node. */
export interface MarkerOwner {
  /** The node's id (its data directory's `node-id`), or the host name when there is none. */
  node: string;
  /** An id of the process, new at each start. */
  process: string;
}

/** A marker's payload (sealed). Markers older than this format have no `node` or `process`. */
export interface RunningMarker {
  id: string;
  volume: string;
  started: string;
  node?: string;
  process?: string;
  pid?: number;
}

const PROCESS_ID = randomUUID();

/** This process on this host (what markers say by default). */
export function thisProcess(node?: string): MarkerOwner {
  return { node: node ?? hostname(), process: PROCESS_ID };
}

export function runningMarker(id: string, volume: string, started: Date, owner: MarkerOwner): RunningMarker {
  return { id, volume, started: started.toISOString(), node: owner.node, process: owner.process, pid: process.pid };
}

/**
 * Reads the marker at `key`, or undefined when it is gone (its backup ended). A marker that does not open (damaged,
 * or sealed with another key) throws DATA_CORRUPTION: the callers decide, and gc leaves such a marker to its 24-hour
 * rule.
 */
export async function readMarker(
  repo: Repository,
  key: string,
  signal?: AbortSignal,
): Promise<RunningMarker | undefined> {
  return repo.getSealedJson<RunningMarker>(key, signal);
}

/**
 * Deletes the markers that `owner.node` wrote from any process but `owner.process`: call it when the node starts,
 * before it runs backups, so they can only be markers of its dead processes. Returns the backup ids cleared.
 */
export async function clearOwnStaleMarkers(
  repo: Repository,
  owner: MarkerOwner,
  signal?: AbortSignal,
): Promise<string[]> {
  const cleared: string[] = [];
  for await (const key of repo.keysUnder('running/', signal)) {
    let marker: RunningMarker | undefined;
    try {
      marker = await readMarker(repo, key, signal);
    } catch (err: unknown) {
      // A marker that does not open is left to the 24-hour rule: whose it is cannot be told.
      if (isFerryError(err, 'DATA_CORRUPTION')) continue;
      throw err;
    }
    if (marker === undefined || marker.node !== owner.node || marker.process === owner.process) continue;
    await repo.deleteObjects([key], signal);
    cleared.push(key.slice('running/'.length));
  }
  return cleared;
}
