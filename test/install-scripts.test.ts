/**
 * infra/install.sh and test/install.sh do each step once and say what they do. They run on a copy of the scripts
 * and package files, with a PATH that holds only the tools they use: `node` and a few coreutils from this machine, and
 * stand-ins for what must not run here (they install system packages and a shared node_modules): `apt-get` and
 * `dpkg-query` over a list of "installed" packages (installing g++, make or python3 puts a stand-in of it on PATH),
 * and `npm`, whose `ci` makes what the real one leaves behind (node_modules, dist/cli/main.js, the addon). Every
 * call of a stand-in is logged.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const COREUTILS = ['cat', 'cut', 'dirname', 'grep', 'mkdir', 'sha256sum', 'touch'];

const STANDINS: Record<string, string> = {
  'apt-get': `#!/bin/sh
echo "apt-get $*" >>"$STANDIN_LOG"
[ "$1" = install ] || exit 0
for arg in "$@"; do
  case "$arg" in
    install|-*) ;;
    *) echo "$arg" >>"$STANDIN_INSTALLED"
       case "$arg" in g++|make|python3) printf '#!/bin/sh\\n' >"$STANDIN_BIN/$arg"; /bin/chmod +x "$STANDIN_BIN/$arg" ;; esac ;;
  esac
done
`,
  'dpkg-query': `#!/bin/sh
for last in "$@"; do :; done
grep -qx "$last" "$STANDIN_INSTALLED" 2>/dev/null && printf 'install ok installed' && exit 0
exit 1
`,
  npm: `#!/bin/sh
echo "npm $*" >>"$STANDIN_LOG"
[ "$1" = ci ] || exit 0
mkdir -p node_modules dist/cli build/Release && touch dist/cli/main.js build/Release/ferry_native.node
`,
};

let root: string;
let repo: string;
let bin: string;
let log: string;

async function runScript(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      '/bin/sh',
      [join(repo, script)],
      {
        env: {
          PATH: bin,
          STANDIN_LOG: log,
          STANDIN_INSTALLED: join(root, 'installed'),
          STANDIN_BIN: bin,
          // test/install.sh ends by preparing the other Node.js majors; naming only the running one makes that step a
          // no-op here (it fetches from the npm registry and copies node_modules).
          FERRY_TEST_NODES: process.versions.node.split('.')[0],
        },
      },
      (error, stdout, stderr) => (error === null ? resolve(stdout) : reject(new Error(`${script}: ${stderr}`))),
    );
  });
}

async function calls(): Promise<string[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  await writeFile(log, '');
  return text.split('\n').filter((l) => l !== '');
}

describe('install scripts', () => {
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-install-'));
    repo = join(root, 'repo');
    bin = join(root, 'bin');
    log = join(root, 'calls.log');
    await mkdir(join(repo, 'infra'), { recursive: true });
    await mkdir(join(repo, 'test'));
    await mkdir(bin);
    for (const file of [
      'infra/install.sh',
      'test/install.sh',
      'test/other-node.sh',
      'package.json',
      'package-lock.json',
    ]) {
      await copyFile(join(REPO, file), join(repo, file));
    }
    for (const tool of COREUTILS) await symlink(`/usr/bin/${tool}`, join(bin, tool));
    await symlink('/bin/sh', join(bin, 'sh'));
    await symlink(process.execPath, join(bin, 'node'));
    for (const [name, text] of Object.entries(STANDINS)) {
      await writeFile(join(bin, name), text);
      await chmod(join(bin, name), 0o755);
    }
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('test/install.sh installs its Debian packages in one apt run, then Ferry once, saying each step', async () => {
    const said = await runScript('test/install.sh');
    const apt = 'apt-get install -y -q --no-install-recommends';
    expect(await calls()).toEqual([
      'apt-get update -q',
      `${apt} libnbd-bin python3-libnbd qemu-utils curl ceph-mon ceph-osd radosgw etcd-server nbdkit fio g++ make python3`,
      'npm ci --no-audit --no-fund --foreground-scripts',
    ]);
    expect(said).toMatch(/==> test\/install.sh: Debian packages/);
    expect(said).toMatch(/==> infra\/install.sh \[1\/2\] C\/C\+\+ toolchain[^\n]*\n {4}already installed/);
    expect(said).toMatch(/==> infra\/install.sh \[2\/2\] npm dependencies/);

    expect(said).toMatch(/==> test\/install.sh: the other supported Node.js LTS majors/);

    // Again, and infra/install.sh after it: nothing is installed twice; only Ferry's own sources are built again.
    expect(await runScript('test/install.sh')).toMatch(/already installed[\s\S]*already done from this package-lock/);
    expect(await runScript('infra/install.sh')).toMatch(/already done from this package-lock/);
    expect(await calls()).toEqual([
      'npm run --silent install',
      'npm run --silent build',
      'npm run --silent install',
      'npm run --silent build',
    ]);
  });

  it('infra/install.sh installs a missing toolchain, and runs npm ci again when the lock file or the build changes', async () => {
    await runScript('infra/install.sh');
    expect(await calls()).toEqual([
      'apt-get update -q',
      'apt-get install -y -q --no-install-recommends g++ make python3',
      'npm ci --no-audit --no-fund --foreground-scripts',
    ]);
    await writeFile(join(repo, 'package-lock.json'), '{"changed": true}\n');
    await runScript('infra/install.sh');
    expect(await calls()).toEqual(['npm ci --no-audit --no-fund --foreground-scripts']);
    await rm(join(repo, 'dist'), { recursive: true });
    await runScript('infra/install.sh');
    expect(await calls()).toEqual(['npm ci --no-audit --no-fund --foreground-scripts']);
    await runScript('infra/install.sh');
    expect(await calls()).toEqual(['npm run --silent install', 'npm run --silent build']);
  });
});
