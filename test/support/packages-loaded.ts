/**
 * Which npm packages a fresh Node process resolves while it imports one file of the repository: how a test shows
 * that a face stays light (no cloud SDK, no etcd client, no test framework loaded by merely importing it).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');

/** Every package a fresh Node process resolves while it imports `file` (relative to the repository). */
export async function packagesLoadedBy(file: string): Promise<Set<string>> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-loaded-'));
  try {
    const log = join(dir, 'resolved.log');
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
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
