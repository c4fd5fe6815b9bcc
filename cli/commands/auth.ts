/**
 * `ferry auth token|whoami|show|share|unshare` (and `nbd-key`, nbd-key.ts): tokens minted from the node's admin secret, the caller's identity,
 * and the ownership (owner and ACLs) of volumes and credentials. See docs/AUTH.md.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  type AccessControl,
  type AccessType,
  DEFAULT_MAX_TOKEN_TTL_SECONDS,
  formatTtl,
  MAX_TOKEN_TTL_ENV,
  MAX_TTL_SECONDS,
  maxTokenTtlSeconds,
  mintToken,
  type Ownership,
  parseTtl,
  ROLE_USER,
  readAdminSecret,
} from '../../api/index.js';
import { isFerryError } from '../../common/index.js';
import { clientFor, globalOptions, output } from '../context.js';
import { cliDataDir } from './auth-token.js';
import { registerNbdKeyCommand } from './nbd-key.js';

const ROLE_NAMES = ['system.admin', 'system.user', 'system.view'];
const ACCESS_NAMES: readonly AccessType[] = ['Read', 'Write', 'Admin'];
const KINDS: Readonly<Record<string, string>> = {
  volume: 'volumes',
  volumes: 'volumes',
  credential: 'credentials',
  credentials: 'credentials',
};

interface TokenOptions {
  sub: string;
  name?: string;
  email?: string;
  roles: string[];
  groups: string[];
  ttl: number;
}

interface ShareOptions {
  group: Record<string, AccessType>;
  user: Record<string, AccessType>;
  public?: AccessType;
  owner?: string;
}

interface UnshareOptions {
  group: string[];
  user: string[];
  public?: boolean;
}

function list(text: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  ];
}

/** The default of --roles; replaced (not extended) by the first --roles given. */
const DEFAULT_ROLES: string[] = [ROLE_USER];

function roleList(text: string, previous: string[] = []): string[] {
  const roles = list(text);
  const unknown = roles.find((role) => !ROLE_NAMES.includes(role));
  if (unknown !== undefined) throw new InvalidArgumentError(`"${unknown}" is not one of ${ROLE_NAMES.join(', ')}`);
  return [...(previous === DEFAULT_ROLES ? [] : previous), ...roles];
}

function ttl(text: string): number {
  let seconds: number;
  try {
    seconds = parseTtl(text, MAX_TTL_SECONDS);
  } catch (err: unknown) {
    throw new InvalidArgumentError(isFerryError(err) ? err.message.replace(/^ttl: /, '') : String(err));
  }
  let max: number;
  try {
    max = maxTokenTtlSeconds(undefined);
  } catch (err: unknown) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
  if (seconds > max) {
    throw new InvalidArgumentError(
      `"${text}" is longer than the longest token lifetime nodes accept (${formatTtl(max)}); ` +
        `ask for at most ${formatTtl(max)}, or raise the node's limit with ferry node start --auth-max-token-ttl ` +
        `(or ${MAX_TOKEN_TTL_ENV}, set for this command too)`,
    );
  }
  return seconds;
}

function accessType(text: string): AccessType {
  const found = ACCESS_NAMES.find((name) => name.toLowerCase() === text.trim().toLowerCase());
  if (found === undefined) throw new InvalidArgumentError(`"${text}" is not Read, Write or Admin`);
  return found;
}

function grant(text: string, previous: Record<string, AccessType> = {}): Record<string, AccessType> {
  const at = text.lastIndexOf('=');
  const name = at < 0 ? text.trim() : text.slice(0, at).trim();
  if (name === '') throw new InvalidArgumentError(`"${text}" is not NAME=Read|Write|Admin`);
  return { ...previous, [name]: at < 0 ? 'Read' : accessType(text.slice(at + 1)) };
}

function kindPath(kind: string): string {
  const path = KINDS[kind];
  if (path === undefined) throw new InvalidArgumentError(`"${kind}" is not volume or credential`);
  return path;
}

/** One line per grant, for people. */
export function ownershipText(id: string, ownership: Ownership | undefined): string {
  if (ownership === undefined) return `${id}: no owner (admins only)`;
  const lines = [`owner: ${ownership.owner}`];
  const acls = ownership.acls ?? {};
  for (const [group, type] of Object.entries(acls.groups ?? {})) lines.push(`group ${group}: ${type}`);
  for (const [user, type] of Object.entries(acls.collaborators ?? {})) lines.push(`user ${user}: ${type}`);
  if (acls.public !== undefined) lines.push(`public: ${acls.public.type}`);
  return lines.join('\n');
}

function withoutEmpty(acls: AccessControl): AccessControl {
  const out: AccessControl = {};
  if (acls.groups !== undefined && Object.keys(acls.groups).length > 0) out.groups = acls.groups;
  if (acls.collaborators !== undefined && Object.keys(acls.collaborators).length > 0) {
    out.collaborators = acls.collaborators;
  }
  if (acls.public !== undefined) out.public = acls.public;
  return out;
}

type OwnershipAnswer = { id: string; ownership?: Ownership };

/** Adds `auth` and its subcommands to `program`. */
export function registerAuthCommands(program: Command): void {
  const auth = program.command('auth').description('API tokens, the caller identity, and who owns what');
  registerNbdKeyCommand(auth);

  auth
    .command('token')
    .description(
      "mint an HS256 token with the node's admin secret (in a cluster, the cluster's: the token works on every node); run it where that secret is readable",
    )
    .requiredOption('--sub <user>', 'user name (the owner recorded on what the token creates)')
    .addOption(
      new Option('--roles <list>', `comma-separated roles: ${ROLE_NAMES.join(', ')}`)
        .argParser(roleList)
        .default(DEFAULT_ROLES, ROLE_USER),
    )
    .option('--groups <list>', 'comma-separated groups (ACLs share with groups)', list, [])
    .option('--name <name>', 'display name claim')
    .option('--email <email>', 'email claim')
    .addOption(
      new Option(
        '--ttl <duration>',
        `lifetime: 90s, 30m, 8h (at most the nodes' limit: ${MAX_TOKEN_TTL_ENV}, default ${formatTtl(DEFAULT_MAX_TOKEN_TTL_SECONDS)})`,
      )
        .argParser(ttl)
        .default(3600, '1h'),
    )
    .action(async (options: TokenOptions, command: Command) => {
      const dataDir = cliDataDir(globalOptions(command).dataDir);
      const secret = await readAdminSecret(dataDir);
      if (secret === undefined) {
        throw new Error(
          `cannot read the admin secret under ${dataDir}: run this as the node's user, or pass --data-dir (a cluster node writes the cluster's admin secret there when it starts)`,
        );
      }
      const token = await mintToken(
        secret,
        {
          sub: options.sub,
          roles: options.roles,
          groups: options.groups,
          ...(options.name !== undefined && { name: options.name }),
          ...(options.email !== undefined && { email: options.email }),
        },
        { ttlSeconds: options.ttl },
      );
      const expires = new Date(Date.now() + options.ttl * 1000).toISOString();
      output(command, { token, expires_at: expires }, () => token);
    });

  auth
    .command('whoami')
    .description('show who the API takes you for (sub, roles, groups)')
    .action(async (_options: unknown, command: Command) => {
      const me = await clientFor(command).request<Record<string, unknown>>('GET', '/v1/auth/whoami');
      output(command, me, () =>
        me.authentication === 'off'
          ? 'authentication is off on this node'
          : [
              `sub: ${String(me.sub)}`,
              `roles: ${Array.isArray(me.roles) ? me.roles.join(', ') : ''}`,
              `groups: ${Array.isArray(me.groups) ? me.groups.join(', ') : ''}`,
            ].join('\n'),
      );
    });

  auth
    .command('show')
    .description('show the owner and ACLs of a volume or credential')
    .argument('<kind>', 'volume or credential')
    .argument('<id>', 'id or name')
    .action(async (kind: string, id: string, _options: unknown, command: Command) => {
      const path = `/v1/ownership/${kindPath(kind)}/${encodeURIComponent(id)}`;
      const answer = await clientFor(command).request<OwnershipAnswer>('GET', path);
      output(command, answer, () => ownershipText(answer.id, answer.ownership));
    });

  auth
    .command('share')
    .description('give groups, users or everyone access to a volume or credential (added to its ACLs)')
    .argument('<kind>', 'volume or credential')
    .argument('<id>', 'id or name')
    .option('--group <group=access>', 'share with a group: Read, Write or Admin (repeatable)', grant, {})
    .option('--user <user=access>', 'share with a user (its token sub): Read, Write or Admin (repeatable)', grant, {})
    .option('--public <access>', 'share with every authenticated caller', accessType)
    .option('--owner <user>', 'give the resource to another owner (system.admin only)')
    .action(async (kind: string, id: string, options: ShareOptions, command: Command) => {
      const client = clientFor(command);
      const path = `/v1/ownership/${kindPath(kind)}/${encodeURIComponent(id)}`;
      const current = (await client.request<OwnershipAnswer>('GET', path)).ownership;
      const acls = current?.acls ?? {};
      const next = withoutEmpty({
        groups: { ...acls.groups, ...options.group },
        collaborators: { ...acls.collaborators, ...options.user },
        ...((options.public ?? acls.public?.type) !== undefined && {
          public: { type: options.public ?? acls.public?.type ?? 'Read' },
        }),
      });
      const body = { ownership: { ...(options.owner !== undefined && { owner: options.owner }), acls: next } };
      const answer = await client.request<OwnershipAnswer>('PUT', path, body);
      output(command, answer, () => ownershipText(answer.id, answer.ownership));
    });

  auth
    .command('unshare')
    .description('take groups, users or everyone off the ACLs of a volume or credential')
    .argument('<kind>', 'volume or credential')
    .argument('<id>', 'id or name')
    .option('--group <group>', 'group to remove (repeatable)', (v: string, p: string[]) => [...p, v], [])
    .option('--user <user>', 'user to remove (repeatable)', (v: string, p: string[]) => [...p, v], [])
    .option('--public', 'remove public access')
    .action(async (kind: string, id: string, options: UnshareOptions, command: Command) => {
      const client = clientFor(command);
      const path = `/v1/ownership/${kindPath(kind)}/${encodeURIComponent(id)}`;
      const current = (await client.request<OwnershipAnswer>('GET', path)).ownership;
      const acls = current?.acls ?? {};
      const groups = Object.fromEntries(Object.entries(acls.groups ?? {}).filter(([g]) => !options.group.includes(g)));
      const collaborators = Object.fromEntries(
        Object.entries(acls.collaborators ?? {}).filter(([u]) => !options.user.includes(u)),
      );
      const next = withoutEmpty({
        groups,
        collaborators,
        ...(options.public !== true && acls.public !== undefined && { public: acls.public }),
      });
      const answer = await client.request<OwnershipAnswer>('PUT', path, { ownership: { acls: next } });
      output(command, answer, () => ownershipText(answer.id, answer.ownership));
    });
}
