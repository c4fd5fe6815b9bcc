import { open } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Makes a create, rename or unlink inside the directory of `path` durable. */
export async function fsyncDir(path: string): Promise<void> {
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
