/**
 * The node id: a UUID in `<dataDir>/node-id`, written on the first start (exclusive create, so two processes on one
 * directory agree). It belongs to the data directory: a node keeps it across restarts and upgrades; a new data
 * directory is a new node. The engine keys the layer trees it holds by it; membership announces the node under it.
 */
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../../common/index.js';

/** File in the data directory that holds the node id. */
export const NODE_ID_FILE = 'node-id';

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && 'code' in err && err.code === code;
}

/** Reads `<dataDir>/node-id`, creating it with a new UUID on the first start. */
export async function loadNodeId(dataDir: string): Promise<string> {
  const path = join(dataDir, NODE_ID_FILE);
  try {
    await writeFile(path, `${randomUUID()}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err: unknown) {
    if (!isErrno(err, 'EEXIST')) {
      throw new FerryError('UNAVAILABLE', `cannot write ${path}: check the data directory`, { cause: err });
    }
  }
  const id = (await readFile(path, 'utf8')).trim();
  if (!NODE_ID.test(id)) {
    throw new FerryError('DATA_CORRUPTION', `${path} does not hold a node id; remove it to give this node a new one`);
  }
  return id;
}
