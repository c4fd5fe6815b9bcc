/**
 * What loading CloudSnap's face (index.ts) costs every process that imports it (the node, the serverless handler):
 * no cloud SDK (openObjectStore loads one when a credential first needs it) and no test framework. The two faces
 * that do load them, store/index.ts (the S3 and GCS classes) and testing.ts (the conformance suite), are probed the
 * same way, which shows the probe sees such a load.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-face-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every package a fresh Node process resolves while it imports `file` (relative to the repository). */
async function packagesLoadedBy(file: string): Promise<Set<string>> {
  const log = join(dir, `${file.replaceAll('/', '_')}.log`);
  const hook = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const found = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, found.url + '\\n');
  return found;
}`;
  const register = `import { register } from 'node:module';
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  await run(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      `data:text/javascript,${encodeURIComponent(register)}`,
      '--input-type=module',
      '-e',
      `await import(${JSON.stringify(join(root, file))});`,
    ],
    { cwd: root },
  );
  const packages = new Set<string>();
  for (const url of (await readFile(log, 'utf8')).split('\n')) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m?.[1] !== undefined) packages.add(m[1]);
  }
  return packages;
}

const HEAVY = ['@aws-sdk/client-s3', '@azure/storage-blob', 'vitest'];

describe("CloudSnap's faces", () => {
  it('index.ts loads no cloud SDK and no test framework', async () => {
    const loaded = await packagesLoadedBy('cloudsnap/index.ts');
    expect(loaded.has('zstd-napi')).toBe(true);
    expect(HEAVY.filter((p) => loaded.has(p))).toEqual([]);
  });

  it('store/index.ts loads the AWS SDK and testing.ts loads vitest', async () => {
    expect((await packagesLoadedBy('cloudsnap/store/index.ts')).has('@aws-sdk/client-s3')).toBe(true);
    expect((await packagesLoadedBy('cloudsnap/testing.ts')).has('vitest')).toBe(true);
  });
});
