/**
 * Where a `directory` credential may point. The node (often root) writes repository files under `path/bucket`, so
 * the operator lists the directories any caller may use (the roots: `ferry node start --directory-roots`, env
 * FERRY_DIRECTORY_ROOTS, default `<data dir>/objects`). Outside the roots only a `system.admin` may point, and never
 * at a system directory (`/etc`, `/usr`, `/proc` ...), at or above the node's data directory, or through a symlink.
 * Everyone: no `.`/`..` components, and a path inside a root must stay inside it once symlinks are resolved.
 *
 * Checked when a credential is created (the directory must exist and be writable, or be created on request) and
 * again each time one is used, so a symlink swapped in later or a credential stored before the rule is refused too.
 */
import { constants } from 'node:fs';
import { access, lstat, mkdir, realpath, rmdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { FerryError } from '../../common/index.js';

/** The directories no directory credential may point at or into (outside the operator's roots). */
export const SYSTEM_DIRECTORIES: readonly string[] = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
  '/var/cache',
  '/var/lib',
  '/var/log',
  '/var/mail',
  '/var/run',
  '/var/spool',
];

/** Roots may not be these or lie under them (they hold the system itself). */
const FORBIDDEN_ROOT_PARENTS: readonly string[] = SYSTEM_DIRECTORIES.filter(
  (d) => !['/var/lib', '/root', '/run', '/var/run'].includes(d),
);

/** The environment variable listing the roots, colon-separated. */
export const DIRECTORY_ROOTS_ENV = 'FERRY_DIRECTORY_ROOTS';

/** Where directory credentials may point on this node. */
export interface DirectoryPolicyOptions {
  /**
   * Directories under which every caller's directory credentials may point (absolute paths). Default none: then
   * only `system.admin` callers may create directory credentials, outside the system directories.
   */
  roots?: readonly string[];
  /** The node's data directory: never a target, except under a root inside it. Default: not checked. */
  dataDir?: string;
}

/** What a check needs to know of the request. */
export interface DirectoryCheckOptions {
  /** Whether the caller is a `system.admin` (allowed outside the roots). */
  admin: boolean;
  /** Create the bucket directory (and missing parents) when it does not exist. Default false. */
  create?: boolean;
  /** The API field the path came from, for error messages. Default `directory_credential.path`. */
  field?: string;
  /**
   * A use of a stored credential, not a create: only where the path leads is checked (a missing or unwritable
   * directory is left to the object store to report). Default false.
   */
  use?: boolean;
}

/** A checked target. */
export interface CheckedDirectory {
  /** `path/bucket`, where the store's root is. */
  target: string;
  /** True when it is outside every root (an admin's choice). */
  outsideRoots: boolean;
  /** Directories the check made (outermost first): remove them if what follows fails. */
  created: string[];
}

function isUnder(child: string, parent: string): boolean {
  return parent === '/' ? child.startsWith('/') : child === parent || child.startsWith(`${parent}/`);
}

function invalid(field: string, message: string): FerryError {
  return new FerryError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function denied(message: string): FerryError {
  return new FerryError('PERMISSION_DENIED', message);
}

/** An absolute path without `.`, `..` or empty components; returned without a trailing '/'. */
function lexical(path: string, field: string): string {
  if (!isAbsolute(path)) throw invalid(field, 'must be an absolute path');
  const parts = path.split('/').slice(1);
  if (parts.at(-1) === '') parts.pop();
  if (parts.some((p) => p === '.' || p === '..' || p === '')) {
    throw invalid(field, `must not hold ".", ".." or empty components; give the directory's plain path`);
  }
  return `/${parts.join('/')}`;
}

/** The real path of `path`: its deepest existing ancestor resolved, the rest appended; and whether it exists. */
async function resolveReal(path: string): Promise<{ real: string; exists: boolean }> {
  const missing: string[] = [];
  let at = path;
  for (;;) {
    try {
      const real = await realpath(at);
      return { real: missing.length === 0 ? real : join(real, ...missing.reverse()), exists: missing.length === 0 };
    } catch (err: unknown) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      if (at === '/') throw err;
      missing.push(at.slice(dirname(at).length + (dirname(at) === '/' ? 0 : 1)));
      at = dirname(at);
    }
  }
}

/** The node's directory rules, with its roots resolved once. */
export class DirectoryPolicy {
  private readonly roots: readonly string[];
  private readonly dataDir: string | undefined;
  private realRoots: Promise<{ root: string; real: string }[]> | undefined;

  constructor(options: DirectoryPolicyOptions = {}) {
    this.roots = (options.roots ?? []).map((r) => normalize(r).replace(/(.)\/+$/, '$1'));
    this.dataDir = options.dataDir === undefined ? undefined : normalize(options.dataDir).replace(/(.)\/+$/, '$1');
    for (const root of this.roots) checkRoot(root, this.dataDir);
  }

  /** The roots as configured. */
  get rootList(): readonly string[] {
    return this.roots;
  }

  /**
   * Checks `path/bucket` (and, inside it, `prefix`) for a new credential or a use of one. INVALID_ARGUMENT for a
   * malformed or missing path, PERMISSION_DENIED for one the caller may not use; each says what to do.
   */
  async check(path: string, bucket: string, prefix: string | undefined, options: DirectoryCheckOptions) {
    const field = options.field ?? 'directory_credential.path';
    const base = lexical(path, field);
    if (base === '/') {
      throw denied(`${field}: "/" is refused: give a directory of its own, e.g. ${this.example()}`);
    }
    const target = join(base, bucket);
    const repository = prefix === undefined ? target : join(target, prefix);
    const roots = await this.resolvedRoots();
    const { real } = await resolveReal(repository);
    const lexicalRoot = roots.find((r) => isUnder(target, r.root) || isUnder(target, r.real));
    let outsideRoots: boolean;
    if (lexicalRoot !== undefined && (target === lexicalRoot.root || target === lexicalRoot.real)) {
      throw denied(`${field}: ${target} is the directory root itself; give a directory inside it`);
    }
    if (lexicalRoot !== undefined) {
      // Inside a root as written: it must stay inside it once symlinks are resolved.
      if (!isUnder(real, lexicalRoot.real) || real === lexicalRoot.real) {
        throw denied(
          `${field}: ${repository} resolves to ${real}, outside the directory root ${lexicalRoot.root} (a symlink); give a directory inside the root`,
        );
      }
      outsideRoots = false;
    } else {
      if (!options.admin) {
        throw denied(
          `${field}: ${target} is outside the directories this node allows for backups (${this.describeRoots()}); ` +
            `use a directory under ${this.roots[0] ?? 'a root'}, or ask an admin (ferry node start --directory-roots)`,
        );
      }
      if (real !== repository) {
        throw denied(`${field}: ${repository} resolves to ${real} through a symlink; give the real path`);
      }
      this.refuseSystem(repository, field);
      outsideRoots = true;
    }
    if (options.use === true) return { target, outsideRoots, created: [] } satisfies CheckedDirectory;
    const exists = await lstat(target).then(
      () => true,
      () => false,
    );
    const created = exists ? [] : await this.ensure(target, options.create === true, field);
    await this.writable(target, field);
    return { target, outsideRoots, created } satisfies CheckedDirectory;
  }

  /** Removes what a check created (innermost first), leaving nothing behind after a failed create. */
  async undo(checked: Pick<CheckedDirectory, 'created'>): Promise<void> {
    for (const dir of [...checked.created].reverse()) await rmdir(dir).catch(() => undefined);
  }

  private refuseSystem(target: string, field: string): void {
    const system = SYSTEM_DIRECTORIES.find((d) => isUnder(target, d));
    if (system !== undefined) {
      throw denied(`${field}: ${target} is in the system directory ${system}; give a directory of its own`);
    }
    if (this.dataDir !== undefined && (isUnder(target, this.dataDir) || isUnder(this.dataDir, target))) {
      throw denied(
        `${field}: ${target} is the node's data directory ${this.dataDir} or holds it; use ${this.example()}`,
      );
    }
  }

  /** Makes the missing directories from the deepest existing one down to `target`, or says how to. */
  private async ensure(target: string, create: boolean, field: string): Promise<string[]> {
    if (!create) {
      throw invalid(
        field,
        `${target} does not exist: create it, or ask Ferry to (ferry credentials create --create; ` +
          `"directory_credential": { "create": true } in the API)`,
      );
    }
    const missing: string[] = [];
    for (let at = target; ; at = dirname(at)) {
      try {
        await lstat(at);
        break;
      } catch {
        missing.unshift(at);
      }
    }
    const created: string[] = [];
    try {
      for (const dir of missing) {
        await mkdir(dir, { mode: 0o700 });
        created.push(dir);
        if (!(await lstat(dir)).isDirectory()) throw denied(`${field}: ${dir} changed while it was being created`);
      }
    } catch (err: unknown) {
      await this.undo({ created });
      if (err instanceof FerryError) throw err;
      throw invalid(field, `cannot create ${target}: ${(err as Error).message}`);
    }
    return created;
  }

  private async writable(target: string, field: string): Promise<void> {
    let isDir: boolean;
    try {
      isDir = (await stat(target)).isDirectory();
    } catch {
      throw invalid(field, `${target} does not exist: create it, or pass --create`);
    }
    if (!isDir) throw invalid(field, `${target} is not a directory`);
    try {
      await access(target, constants.W_OK | constants.X_OK);
    } catch {
      throw invalid(field, `${target} is not writable by the node; fix its owner or mode`);
    }
  }

  private resolvedRoots(): Promise<{ root: string; real: string }[]> {
    this.realRoots ??= Promise.all(this.roots.map(async (root) => ({ root, real: (await resolveReal(root)).real })));
    return this.realRoots;
  }

  private describeRoots(): string {
    return this.roots.length === 0 ? 'none configured' : this.roots.join(', ');
  }

  private example(): string {
    return this.roots[0] === undefined ? '/srv/ferry-objects' : `a directory under ${this.roots[0]}`;
  }
}

/** Refuses a root that is `/`, a system directory or inside one, or at or above the data directory. */
function checkRoot(root: string, dataDir: string | undefined): void {
  const setting = `directory root ${root}`;
  if (!isAbsolute(root)) throw new FerryError('INVALID_ARGUMENT', `${setting}: must be an absolute path`);
  if (root === '/' || root.split('/').includes('..')) {
    throw new FerryError('INVALID_ARGUMENT', `${setting}: give a directory of its own, not "/" or a path with ".."`);
  }
  // Under /var/lib, /root or /run is allowed (the default data directory is /var/lib/ferry); holding one is not.
  const inSystem = FORBIDDEN_ROOT_PARENTS.some((d) => isUnder(root, d));
  if (inSystem || SYSTEM_DIRECTORIES.some((d) => isUnder(d, root))) {
    throw new FerryError('INVALID_ARGUMENT', `${setting}: is or holds a system directory; give one of its own`);
  }
  if (
    dataDir !== undefined &&
    (isUnder(dataDir, root) || (isUnder(root, dataDir) && !isUnder(root, join(dataDir, 'objects'))))
  ) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `${setting}: is or holds the data directory ${dataDir}, or is inside it other than under ${join(dataDir, 'objects')}`,
    );
  }
}

/** The roots from a flag or FERRY_DIRECTORY_ROOTS (colon-separated), else `<dataDir>/objects`. */
export function directoryRoots(flag: string | undefined, dataDir: string, env: NodeJS.ProcessEnv = process.env) {
  const text = flag ?? env[DIRECTORY_ROOTS_ENV];
  if (text === undefined || text.trim() === '') return [join(dataDir, 'objects')];
  return text
    .split(':')
    .map((r) => r.trim())
    .filter((r) => r !== '');
}
