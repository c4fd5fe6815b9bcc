/**
 * The embedded default key provider of a node: `<dataDir>/keyring/keyring.bin`, protected by the raw key in
 * `<dataDir>/keyring/master.key`, both 0600 in a 0700 directory, with a KEK named `default`. All three are created on
 * the first start.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, isFerryError, pathExists } from '../common/index.js';
import { LocalKeyring } from './local-keyring.js';
import { writePrivateFile } from './private-file.js';

/** The KEK every node has; credentials' secrets and (by default) backups are protected by it. */
export const DEFAULT_KEK = 'default';

/** Opens (creating on first start) the default keyring of the node whose data directory is `dataDir`. */
export async function openDefaultKeyring(dataDir: string): Promise<LocalKeyring> {
  const dir = join(dataDir, 'keyring');
  const keyFile = join(dir, 'master.key');
  const path = join(dir, 'keyring.bin');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!(await pathExists(keyFile))) {
    if (await pathExists(path)) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `${keyFile} is missing but ${path} exists: restore master.key from your backup (a new key cannot open the keyring)`,
      );
    }
    const key = randomBytes(32);
    try {
      await writePrivateFile(keyFile, key, true);
    } catch (err: unknown) {
      // Another process created it first: use theirs.
      if (!isFerryError(err, 'ALREADY_EXISTS')) throw err;
    } finally {
      key.fill(0);
    }
  }
  const keyring = await LocalKeyring.open({ path, keyFile, create: true });
  try {
    const keks = await keyring.listKeks();
    if (!keks.some((kek) => kek.id === DEFAULT_KEK)) await keyring.createKek(DEFAULT_KEK);
  } catch (err: unknown) {
    await keyring.close();
    throw err;
  }
  return keyring;
}
