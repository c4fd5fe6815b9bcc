/**
 * `ferry keys list|create|rotate|destroy`: the KEKs that protect backups. `rotate` gives a local KEK a new version
 * (Vault and KMS keys are rotated there) and rewraps every repository under it; `destroy` shreds a local KEK, which
 * makes every backup under it unreadable for good, so it asks for `--yes`.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { DestroyKeyResult, LocalKekInfo, RotateKeyResult } from '../../api/index.js';
import { ApiError } from '../client.js';
import { clientFor, globalOptions, output } from '../context.js';
import { renderTable } from '../format.js';

interface RotateOptions {
  cred?: string;
  keyProvider?: string;
}

const ROTATE_HELP = `
Rotation rewraps each repository's master secret (its small config object) under the KEK's newest version; no
backup data is read or re-uploaded, and backups restore as before. For vault and aws-kms, rotate the key in Vault
or KMS first: Ferry then rewraps under the newest version there.`;

const DESTROY_HELP = `
Crypto-shredding: the KEK's key material is removed from the node's keyring (in a cluster, from the cluster's
keyring: every node stops unwrapping with it at once). Every backup whose repository it protects becomes unreadable,
on every cluster, for good, and so does every encrypted volume whose key it wraps (they are listed first, and refused
without --force; they then show as "down - KEK ... destroyed"). Copies of the keyring file (backups of the node's data
directory, and a node's own file from before it joined a cluster) and, in a cluster, etcd's history until it is
compacted and backups of etcd still hold it, sealed: destroy those too (docs/KEYS.md).`;

/** The table of `ferry keys list`. */
export function keksTable(keks: readonly LocalKekInfo[]): string {
  return renderTable(
    ['KEK', 'VERSION', 'STATE', 'CREATED'],
    keks.map((k) => [
      k.id,
      String(k.version),
      k.destroyed ? `destroyed ${k.destroyed_at ?? ''}`.trim() : 'active',
      k.created,
    ]),
  );
}

/** The text of `ferry keys rotate`. */
export function rotationText(result: RotateKeyResult): string {
  const head = `KEK ${result.kek} (${result.key_provider}) is at version ${result.version}`;
  if (result.repositories.length === 0) return `${head}; no repository uses it yet`;
  const table = renderTable(
    ['CREDENTIAL', 'LOCATION', 'FROM', 'TO', 'RESULT'],
    result.repositories.map((r) => [
      r.credential_id,
      r.location,
      r.from_version === undefined ? '-' : String(r.from_version),
      r.to_version === undefined ? '-' : String(r.to_version),
      'rewrapped',
    ]),
  );
  return `${head}\n${table}`;
}

/**
 * Runs `call`; with `--json`, a failure is also printed on stdout as `{ "error": { code, message } }` (scripts read
 * stdout), before the usual `error: ...` line on stderr and exit status.
 */
async function jsonErrors<T>(command: Command, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err: unknown) {
    if (globalOptions(command).json) {
      const code = err instanceof ApiError ? err.code : 'INTERNAL';
      const message = err instanceof Error ? err.message : String(err);
      process.stdout.write(`${JSON.stringify({ error: { code, message } }, null, 2)}\n`);
    }
    throw err;
  }
}

/** What destroying a KEK loses: "the backups under it (credentials: a) and encrypted volumes pay". */
export function lossText(result: DestroyKeyResult): string {
  const who = result.credentials.length > 0 ? ` (credentials: ${result.credentials.join(', ')})` : '';
  const backups = `the backups under it${who}`;
  const volumes = result.volumes;
  if (volumes.length === 0) return backups;
  return `${backups} and encrypted ${volumes.length === 1 ? 'volume' : 'volumes'} ${volumes.join(', ')}`;
}

/** Adds `keys` and its subcommands to `program`. */
export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('manage the KEKs that protect backups (rotate, crypto-shred)');

  keys
    .command('list')
    .description("list the local keyring's KEKs with their versions, and the node's key providers")
    .action(async (_options: object, command: Command) => {
      const list = await clientFor(command).request<{ keks: LocalKekInfo[]; providers: string[] }>('GET', '/v1/keys');
      output(command, list, () => `${keksTable(list.keks)}\nKey providers: ${list.providers.join(', ')}`);
    });

  keys
    .command('create')
    .description('create a KEK in the local keyring')
    .argument('<kek>', 'KEK name')
    .action(async (kek: string, _options: object, command: Command) => {
      const info = await clientFor(command).request<LocalKekInfo>('POST', '/v1/keys', { kek });
      output(command, info, () => `KEK ${info.id} created (version ${info.version})`);
    });

  keys
    .command('rotate')
    .description('rotate a KEK and rewrap the master secret of every repository under it')
    .argument('<kek>', 'KEK name (or KMS key id, ARN or alias)')
    .option('--cred <credential>', 'only the repositories of this credential (id or name)')
    .addOption(
      new Option('--key-provider <provider>', 'provider holding the KEK (default local)').choices([
        'local',
        'vault',
        'aws-kms',
      ]),
    )
    .addHelpText('after', ROTATE_HELP)
    .action(async (kek: string, options: RotateOptions, command: Command) => {
      const result = await jsonErrors(command, () =>
        clientFor(command).request<RotateKeyResult>('POST', '/v1/keys/rotate', {
          kek,
          ...(options.keyProvider !== undefined && { key_provider: options.keyProvider }),
          ...(options.cred !== undefined && { credential_id: options.cred }),
        }),
      );
      output(command, result, () => rotationText(result));
    });

  keys
    .command('destroy')
    .description(
      'destroy a local KEK (crypto-shredding): every backup and encrypted volume under it becomes unreadable, for good',
    )
    .argument('<kek>', 'KEK name')
    .option('--yes', 'confirm: the backups under this KEK are lost')
    .option('--force', 'destroy it even though encrypted volumes use it (they become unreadable, for good)')
    .addHelpText('after', DESTROY_HELP)
    .action(async (kek: string, options: { yes?: boolean; force?: boolean }, command: Command) => {
      const client = clientFor(command);
      if (options.yes !== true) {
        const lost = await client
          .request<DestroyKeyResult>('POST', '/v1/keys/destroy', { kek, dry_run: true })
          .then(lossText, () => 'every backup under it');
        throw new InvalidArgumentError(
          `destroying KEK ${kek} makes ${lost} unreadable, for good; add --yes to confirm`,
        );
      }
      const result = await client.request<DestroyKeyResult>('POST', '/v1/keys/destroy', {
        kek,
        ...(options.force === true && { force: true }),
      });
      output(command, result, () => `KEK ${kek} destroyed: ${lossText(result)} are unreadable`);
    });
}
