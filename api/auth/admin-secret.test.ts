/** The admin secret file: created once with mode 0600, then reused; readable or not. */
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adminSecretPath, ensureAdminSecret, readAdminSecret } from './admin-secret.js';

let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-admin-secret-'));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('ensureAdminSecret', () => {
  it('creates 32 random bytes as base64url, mode 0600 in a 0700 directory, once', async () => {
    const first = await ensureAdminSecret(dataDir);
    expect(first).toMatchObject({ path: adminSecretPath(dataDir), created: true, looseMode: false });
    expect((await stat(first.path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dataDir, 'auth'))).mode & 0o777).toBe(0o700);
    expect((await readFile(first.path, 'utf8')).trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const second = await ensureAdminSecret(dataDir);
    expect(second.created).toBe(false);
    expect(Buffer.from(second.secret).equals(Buffer.from(first.secret))).toBe(true);
    expect(Buffer.from((await readAdminSecret(dataDir)) ?? []).equals(Buffer.from(first.secret))).toBe(true);
  });

  it('reports a file others can read, and reads nothing where there is no secret', async () => {
    const { path } = await ensureAdminSecret(dataDir);
    await chmod(path, 0o644);
    expect((await ensureAdminSecret(dataDir)).looseMode).toBe(true);
    expect(await readAdminSecret(join(dataDir, 'elsewhere'))).toBeUndefined();
  });
});
