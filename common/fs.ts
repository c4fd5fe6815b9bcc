import { access } from 'node:fs/promises';

/** Whether something exists at `path` (false also when it cannot be reached, e.g. a directory without search). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
