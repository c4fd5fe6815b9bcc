/**
 * The import rules (.dependency-cruiser.cjs, `npm run lint:deps`) catch what they are for: dependency-cruiser runs
 * with the project's config over small trees written to a temporary directory, shaped like Ferry's folders.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'node_modules', '.bin');
const config = join(root, '.dependency-cruiser.cjs');

/** A violation as dependency-cruiser reports it, reduced to what the tests compare. */
interface Violation {
  from: string;
  to: string;
  rule: string;
}

interface CruiseReport {
  summary: { violations: { from: string; to: string; rule: { name: string } }[] };
}

const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Runs `command` in `cwd`: its exit code and output (a non-zero exit is an answer, not a failure). */
function run(command: string, args: string[], cwd: string): Promise<{ exitCode: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(join(bin, command), args, { cwd }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') reject(new Error(`${command} did not run: ${stderr}`));
      else resolve({ exitCode: err === null ? 0 : Number(err.code), stdout });
    });
  });
}

/**
 * Writes `files` (path -> source) into a new directory and cruises it with the project's config: the violations from
 * the JSON report, the exit code from the command `npm run lint:deps` runs (the number of errors).
 */
async function cruise(files: Record<string, string>): Promise<{ exitCode: number; violations: Violation[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-import-rules-'));
  dirs.push(dir);
  for (const [path, source] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), source);
  }
  const cruised = await run('depcruise', ['--config', config, '--output-type', 'json', '.'], dir);
  expect(cruised.exitCode).toBe(0);
  const { exitCode } = await run('depcruise', ['--config', config, '--output-type', 'err-long', '.'], dir);
  const report = JSON.parse(cruised.stdout) as CruiseReport;
  const violations = report.summary.violations
    .map((v) => ({ from: v.from, to: v.to, rule: v.rule.name }))
    .sort((a, b) => `${a.from} ${a.rule}`.localeCompare(`${b.from} ${b.rule}`));
  return { exitCode, violations };
}

describe('import rules', () => {
  it('fails on an import behind a folder face and on an import pointing up', async () => {
    const { exitCode, violations } = await cruise({
      'api/index.ts': "export { x } from './x.js';\n",
      'api/x.ts': "import { y } from '../cloudsnap/repo/y.js';\nexport const x = y;\n",
      'cloudsnap/index.ts': "export { y } from './repo/y.js';\n",
      'cloudsnap/repo/y.ts': 'export const y = 1;\n',
      'node/z.ts': "import { x } from '../api/index.js';\nexport const z = x;\n",
    });
    expect(violations).toEqual([
      { from: 'api/x.ts', to: 'cloudsnap/repo/y.ts', rule: 'through-the-face' },
      { from: 'node/z.ts', to: 'api/index.ts', rule: 'node-and-kms-only-on-common' },
    ]);
    expect(exitCode).toBe(2);
  });

  it('passes a tree that imports through the faces and only down', async () => {
    const { exitCode, violations } = await cruise({
      'api/index.ts': "export { x } from './x.js';\n",
      'api/x.ts':
        "import { y } from '../cloudsnap/index.js';\nimport { z } from '../node/index.js';\nexport const x = y + z;\n",
      'api/x.test.ts': "import { x } from './x.js';\nimport { start } from '../test/support/server.js';\nstart(x);\n",
      'cloudsnap/index.ts': "export { y } from './repo/y.js';\n",
      'cloudsnap/repo/y.ts': "import { k } from '../../kms/index.js';\nexport const y = k;\n",
      'kms/index.ts': "import { c } from '../common/index.js';\nexport const k = c;\n",
      'node/index.ts': "export { z } from './engine/z.js';\n",
      'node/engine/z.ts': "import { native } from '../../common/native/index.js';\nexport const z = native;\n",
      'node/engine/z.test.ts':
        "import { z } from './z.js';\nimport { start } from '../../test/support/server.js';\nstart(z);\n",
      'common/index.ts': 'export const c = 1;\n',
      'common/native/index.ts': 'export const native = 2;\n',
      'test/support/server.ts':
        "import { x } from '../../api/index.js';\nexport function start(n: number): number {\n  return n + x;\n}\n",
      // A cycle that closes only through `import type` is erased by the compiler: allowed.
      'cloudsnap/repo/a.ts': "import type { B } from './b.js';\nexport interface A { b?: B }\n",
      'cloudsnap/repo/b.ts': "import type { A } from './a.js';\nexport interface B { a?: A }\n",
    });
    expect(violations).toEqual([]);
    expect(exitCode).toBe(0);
  });

  it('catches each rule: tests through faces, layers, nothing shipped on tests, run-time cycles', async () => {
    const { exitCode, violations } = await cruise({
      'api/index.ts': 'export const a = 1;\n',
      'api/schedules/index.ts': 'export const s = 1;\n',
      'api/up.ts': "import { run } from '../cli/index.js';\nexport const up = run;\n",
      'cli/index.ts': 'export const run = 1;\n',
      'cloudsnap/index.ts': 'export const y = 1;\n',
      'cloudsnap/up.ts': "import { a } from '../api/index.js';\nexport const up = a;\n",
      'common/index.ts': "import { k } from '../kms/index.js';\nexport const c = k;\n",
      'kms/index.ts': 'export const k = 1;\n',
      'kms/uses-test.ts': "import { h } from '../test/support/helper.js';\nexport const u = h;\n",
      'node/index.ts': "export { p } from './p.js';\n",
      'node/p.ts': "import { q } from './q.js';\nexport const p = 1;\nexport const pq = () => q;\n",
      'node/q.ts': "import { p } from './p.js';\nexport const q = () => p;\n",
      'node/p.test.ts': "import { t } from '../test/other.test.js';\nexport const pt = t;\n",
      'test/other.test.ts': 'export const t = 1;\n',
      'test/deep.test.ts': "import { s } from '../api/schedules/index.js';\nexport const d = s;\n",
      'test/support/helper.ts': 'export const h = 1;\n',
    });
    expect(violations).toEqual([
      { from: 'api/up.ts', to: 'cli/index.ts', rule: 'api-not-on-cli' },
      { from: 'cloudsnap/up.ts', to: 'api/index.ts', rule: 'cloudsnap-not-on-api-or-cli' },
      { from: 'common/index.ts', to: 'kms/index.ts', rule: 'common-on-nothing' },
      { from: 'kms/uses-test.ts', to: 'test/support/helper.ts', rule: 'product-not-on-test-or-bench' },
      { from: 'kms/uses-test.ts', to: 'test/support/helper.ts', rule: 'through-the-face' },
      { from: 'node/p.test.ts', to: 'test/other.test.ts', rule: 'node-and-kms-only-on-common' },
      { from: 'node/p.test.ts', to: 'test/other.test.ts', rule: 'tests-not-on-other-tests-or-bench' },
      { from: 'node/p.test.ts', to: 'test/other.test.ts', rule: 'through-the-face-in-tests' },
      { from: 'node/p.ts', to: 'node/q.ts', rule: 'no-circular' },
      { from: 'test/deep.test.ts', to: 'api/schedules/index.ts', rule: 'through-the-face-in-tests' },
    ]);
    expect(exitCode).toBe(violations.length);
  });
});
