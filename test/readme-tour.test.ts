/**
 * The README's tour ("## A tour" up to "## Configuration") runs as written, top to bottom, against a fresh node, and
 * prints what the README shows. Needs `npm run build` first (the test script does it).
 *
 * How the tour is run (test/support/readme-tour.ts says how commands and shown output are read from the README):
 * - a fresh `ferry node start` with a temp data dir and free loopback ports (test/support/cli-node.ts);
 * - every command with `/bin/sh -c`, one after another, in a scratch directory (the "current directory" of the tour:
 *   disk.raw, before.raw, ...), `ferry` on PATH as a script that runs the built CLI (dist/cli/main.js), and the
 *   environment a shell on the node's host has: FERRY_API_URL pointing at the test node and FERRY_DATA_DIR at its
 *   data dir, so that the CLI signs with the node's admin secret as the README says (FERRY_TOKEN unset);
 * - the README's host-specific strings are mapped (HOST below), in commands from the README's to the test's, in
 *   output back: `127.0.0.1:9001` (the API) and `127.0.0.1:10809` (NBD) to the test node's addresses, and
 *   `/srv/ferry-objects` (the directory credentials' path) to a temp directory;
 * - a command must exit 0; where the README shows output (console blocks), stdout must be those lines, with only the
 *   differences test/support/tour-output.ts lists (ids, timestamps, job durations; and column padding in output
 *   that held a mapped path or port, since a table pads its columns to the test's longer strings) allowed. stderr (progress, warnings)
 *   is not compared: the README shows stdout. The README's ids stand for the ones the node printed in their place,
 *   so `ferry cloudsnap restore BACKUP_ID` runs with the backup id that `ferry cloudsnap backup` printed.
 * Every failure is collected and reported at the end, README line beside actual line, so one change of wording or
 * columns shows everywhere it matters at once.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, startTestNode, type TestNode } from './support/cli-node.js';
import { extractTour, type TourCommand } from './support/readme-tour.js';
import { compareOutput, type HostMapping, IdPairs, mapHost, outputLines } from './support/tour-output.js';

const README = fileURLToPath(new URL('../README.md', import.meta.url));

interface ShellResult {
  code: number;
  stdout: string;
  stderr: string;
}

function shell(command: string, cwd: string, env: NodeJS.ProcessEnv): Promise<ShellResult> {
  return new Promise((resolve) => {
    execFile(
      '/bin/sh',
      ['-c', command],
      { cwd, env, timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('README tour extraction', () => {
  const sample = [
    '# Title',
    '```sh',
    'not in the tour',
    '```',
    '## A tour',
    '```console',
    '$ ferry volume create a --size 1G',
    'Volume successfully created: 0123456789abcdef',
    '$ ferry volume delete a',
    '```',
    '```sh',
    '# a comment',
    'ferry keys create k   # trailing comment',
    'nbdcopy a \\',
    '  b',
    '```',
    '<!-- tour: skip: no nbd module here -->',
    '```sh',
    'modprobe nbd',
    '```',
    '```json',
    '{"not": "a command"}',
    '```',
    '## Configuration',
    '```sh',
    'after the tour',
    '```',
  ].join('\n');

  it('reads commands in order, the output console blocks show, and skipped blocks with their reason', () => {
    const tour = extractTour(sample);
    expect(tour.commands).toEqual([
      {
        line: 7,
        command: 'ferry volume create a --size 1G',
        shown: [{ line: 8, text: 'Volume successfully created: 0123456789abcdef' }],
      },
      { line: 9, command: 'ferry volume delete a', shown: [] },
      { line: 13, command: 'ferry keys create k   # trailing comment', shown: undefined },
      { line: 14, command: 'nbdcopy a b', shown: undefined },
    ]);
    expect(tour.skipped).toEqual([{ line: 18, reason: 'no nbd module here', commands: ['modprobe nbd'] }]);
  });

  it('refuses a block without a language and a skip without a reason', () => {
    expect(() => extractTour('## A tour\n```\nferry status\n```\n')).toThrow(/needs a language/);
    expect(() => extractTour('## A tour\n<!-- tour: skip: -->\n```sh\nx\n```\n')).toThrow(/needs its reason/);
  });
});

describe('README tour output comparison', () => {
  const shown = (...texts: string[]) => texts.map((text, i) => ({ line: 110 + i, text }));

  it('pairs ids, lets timestamps and durations vary, and nothing else', () => {
    const ids = new IdPairs();
    const readme = shown(
      'Cloud backup 20261128T101500.123Z-1a2b3c4d of pgdata done: 10 MiB / 10 MiB (100%) in 0.4 s',
      'ID                NAME    CREATED',
      '7d0586f905f36a8a  pgdata  2026-11-28T10:15:00.512Z',
    );
    const actual = [
      'Cloud backup 20261206T142852.857Z-be71619e of pgdata done: 10 MiB / 10 MiB (100%) in 12.3 s',
      'ID                NAME    CREATED',
      'f10ac00ccfd6f7d2  pgdata  2026-12-06T14:28:53.184Z',
    ];
    ids.pair(readme.map((s) => s.text).join('\n'), actual.join('\n'));
    expect(compareOutput(readme, actual, ids)).toBeUndefined();
    const changed = (from: string, to: string) => actual.map((l) => l.replace(from, to));
    expect(compareOutput(readme, changed('10 MiB / 10 MiB', '10 MiB / 11 MiB'), ids)).toContain('+ actual');
    expect(compareOutput(readme, changed('in 12.3 s', 'in 12 s'), ids)).toContain('+ actual');
    expect(compareOutput(readme, changed('2026-12-06T14:28:53.184Z', '2026-12-06 14:28'), ids)).toContain('+ actual');
    expect(ids.command('ferry cloudsnap restore 20261128T101500.123Z-1a2b3c4d')).toEqual({
      command: 'ferry cloudsnap restore 20261206T142852.857Z-be71619e',
      unpaired: [],
    });
    expect(ids.command('ferry cloudsnap restore 20251128T101500.123Z-1a2b3c4d').unpaired).toHaveLength(1);
  });

  it('shows a changed column as README line against actual line', () => {
    const ids = new IdPairs();
    const readme = shown('ID                NAME    SIZE', '7d0586f905f36a8a  pgdata  100 GiB');
    const actual = ['ID                NAME    SIZE     USED', 'f10ac00ccfd6f7d2  pgdata  100 GiB  0 B'];
    ids.pair(readme.map((s) => s.text).join('\n'), actual.join('\n'));
    expect(compareOutput(readme, actual, ids)).toBe(
      [
        '- README.md:110 | ID                NAME    SIZE',
        '- README.md:111 | 7d0586f905f36a8a  pgdata  100 GiB',
        '+ actual        | ID                NAME    SIZE     USED',
        '+ actual        | 7d0586f905f36a8a  pgdata  100 GiB  0 B',
      ].join('\n'),
    );
  });

  it('holds a README id to the id it was first paired with', () => {
    const ids = new IdPairs();
    ids.pair('Volume successfully created: 7d0586f905f36a8a', 'Volume successfully created: f10ac00ccfd6f7d2');
    ids.pair('Volume successfully created: 0420065b1178aa93', 'Volume successfully created: 67f7f3dab497a2a8');
    const listed = shown('7d0586f905f36a8a  pgdata');
    expect(compareOutput(listed, ['f10ac00ccfd6f7d2  pgdata'], ids)).toBeUndefined();
    expect(compareOutput(listed, ['67f7f3dab497a2a8  pgdata'], ids)).toContain('+ actual');
    expect(compareOutput(shown('one line'), ['one line', 'and another'], ids)).toContain(
      '+ actual        | and another',
    );
    expect(compareOutput(shown('printed'), [], ids)).toContain('- README.md:110 | printed');
  });

  it('lets column padding vary only when asked to (output that held a mapped path)', () => {
    const ids = new IdPairs();
    const readme = shown('LOCATION                  TO', 'file:///srv/ferry-objects  2');
    const actual = ['LOCATION                   TO', 'file:///srv/ferry-objects  2'];
    expect(compareOutput(readme, actual, ids)).toContain('+ actual');
    expect(compareOutput(readme, actual, ids, { looseColumns: true })).toBeUndefined();
    expect(
      compareOutput(readme, ['LOCATION TO', 'file:///srv/ferry-objects  2'], ids, { looseColumns: true }),
    ).toContain('+ actual');
  });

  it('maps host strings both ways, longest first', () => {
    const host: HostMapping[] = [
      { readme: '127.0.0.1:9001', actual: '127.0.0.1:40001' },
      { readme: '/srv/ferry-objects', actual: '/tmp/x/srv-ferry-objects' },
    ];
    expect(mapHost('curl http://127.0.0.1:9001/healthz', host, 'actual')).toBe('curl http://127.0.0.1:40001/healthz');
    expect(mapHost('path /tmp/x/srv-ferry-objects/backups', host, 'readme')).toBe('path /srv/ferry-objects/backups');
  });
});

describe('README tour', () => {
  let root: string;
  let node: TestNode;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-tour-'));
    node = await startTestNode(join(root, 'data'));
  });

  afterAll(async () => {
    await node?.stop();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('runs top to bottom on a fresh node and prints what the README shows', { timeout: 300_000 }, async () => {
    const tour = extractTour(await readFile(README, 'utf8'));
    expect(tour.commands.length).toBeGreaterThan(0);
    expect(tour.commands.some((c) => c.shown !== undefined && c.shown.length > 0)).toBe(true);
    for (const skip of tour.skipped) expect(skip.reason.length).toBeGreaterThan(10);

    const work = join(root, 'work');
    const bin = join(root, 'bin');
    const objects = join(root, 'srv-ferry-objects');
    await mkdir(work);
    await mkdir(bin);
    await writeFile(join(bin, 'ferry'), `#!/bin/sh\nexec '${process.execPath}' '${MAIN}' "$@"\n`);
    await chmod(join(bin, 'ferry'), 0o755);
    const HOST: HostMapping[] = [
      { readme: '127.0.0.1:9001', actual: new URL(node.apiUrl).host },
      { readme: '127.0.0.1:10809', actual: new URL(node.nbdUrl).host },
      { readme: '/srv/ferry-objects', actual: objects },
    ];
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERRY_')));
    const env: NodeJS.ProcessEnv = {
      ...inherited,
      // Debian's tools first (nbdcopy, qemu-img, ...), as in test/support/run.ts.
      PATH: `${bin}:/usr/bin:${process.env.PATH ?? ''}`,
      FERRY_API_URL: node.apiUrl,
      FERRY_DATA_DIR: join(root, 'data'),
    };

    const ids = new IdPairs();
    const problems: string[] = [];
    const where = (c: TourCommand) => `README.md:${c.line} \`${c.command}\``;
    for (const step of tour.commands) {
      const { command, unpaired } = ids.command(mapHost(step.command, HOST, 'actual'));
      if (unpaired.length > 0) {
        problems.push(`${where(step)} uses ${unpaired.join(', ')}, which no output before it showed`);
      }
      const result = await shell(command, work, env);
      if (result.code !== 0) {
        const said = [result.stderr.trim(), result.stdout.trim()].filter((s) => s !== '').join('\n');
        problems.push(`${where(step)} exited ${result.code}:\n${said.replace(/^/gm, '    ')}`);
      }
      if (step.shown === undefined) continue;
      const actual = mapHost(result.stdout, HOST, 'readme');
      ids.pair(step.shown.map((s) => s.text).join('\n'), actual);
      const looseColumns = actual !== result.stdout;
      const diff = compareOutput(step.shown, outputLines(actual), ids, { looseColumns });
      if (diff !== undefined) {
        problems.push(
          `${where(step)} printed something else (- README, + actual; ids shown as the README's):\n${diff}`,
        );
      }
    }
    if (problems.length > 0) {
      throw new Error(`The README's tour does not run as written (${problems.length}):\n\n${problems.join('\n\n')}`);
    }
  });
});
