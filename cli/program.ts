/** The `ferry` command tree and how a run ends: exit codes and `error: ...` lines. */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { FERRY_VERSION } from '../api/index.js';
import { addAliases } from './aliases.js';
import { ApiError } from './client.js';
import { registerApiCommands } from './commands/api.js';
import { registerAuthCommands } from './commands/auth.js';
import { registerCloudsnapCommands } from './commands/cloudsnap.js';
import { registerClusterCommands } from './commands/cluster.js';
import { registerCompletionCommand } from './commands/completion.js';
import { registerCredentialCommands } from './commands/credentials.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerMigrateCommands } from './commands/migrate.js';
import { registerNodeCommands } from './commands/node.js';
import { registerPairCommands } from './commands/pair.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerStatusCommand } from './commands/status.js';
import { registerVolumeCommands } from './commands/volume.js';
import { OUTPUT_FORMATS } from './context.js';

/** Exit status for a usage error or an INVALID_ARGUMENT answer. */
export const EXIT_USAGE = 2;
/** Exit status for every other failure. */
export const EXIT_FAILURE = 1;

const EPILOGUE = `
Environment:
  FERRY_API_URL    API base URL used by client commands (default http://127.0.0.1:9001)
  FERRY_TOKEN      API bearer token (else one is minted from FERRY_DATA_DIR/auth/admin.secret when readable)
  FERRY_DATA_DIR   data directory (--data-dir) of \`ferry node start\`, and whose admin secret signs the CLI's
                   token (default /var/lib/ferry as root, else ~/.ferry)
  FERRY_API_ADDR   API listen address of \`ferry node start\` (default 127.0.0.1:9001)
  FERRY_NBD_ADDR   NBD listen address of \`ferry node start\` (default 127.0.0.1:10809)
  FERRY_PROGRESS_SECONDS  seconds between progress lines of --wait and --watch when stderr is not a terminal
                   (default 3)
  FERRY_VAULT_*, FERRY_KMS_*  key providers of \`ferry node start\` besides the local keyring (docs/KEYS.md)

Sizes take bytes or binary units: 4096, 10G, 10GiB, 1T (K/M/G/T/P are powers of 1024).
--json (or -o json) prints the API's JSON responses unchanged; -o yaml prints them as YAML; -o wide adds columns
to tables. Aliases: vol (volume), ls (list), rm (delete). Shell completion: ferry completion bash|zsh|fish.

Exit status:
  0  success
  1  the operation failed (not found, already exists, refused, API unreachable, ...)
  2  bad usage or an invalid argument (unknown option, bad size, INVALID_ARGUMENT from the API)
Errors are printed on stderr as "error: <message>".`;

/** Builds the command tree. Settings made here are inherited by every subcommand. */
export function createProgram(): Command {
  const program = new Command('ferry')
    .description('Ferry: container-granular block storage with cloud backup and disaster recovery')
    .version(FERRY_VERSION, '-V, --version', 'print the version')
    .option('--api <url>', 'Ferry API base URL (env FERRY_API_URL, default http://127.0.0.1:9001)')
    .addOption(
      new Option('-o, --output <format>', 'output format: table (default), wide (more columns), json, yaml').choices(
        OUTPUT_FORMATS,
      ),
    )
    .option('--json', 'print machine-readable JSON (the API responses); the same as -o json')
    .option('--token <jwt>', 'API bearer token (env FERRY_TOKEN; default: an admin token from a readable admin secret)')
    .option(
      '--data-dir <dir>',
      'data directory of `node start`, and whose admin secret signs the CLI token (env FERRY_DATA_DIR; default ' +
        '/var/lib/ferry as root, else ~/.ferry)',
    )
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .addHelpText('after', EPILOGUE);
  registerNodeCommands(program);
  registerPairCommands(registerClusterCommands(program));
  registerMigrateCommands(program);
  registerVolumeCommands(program);
  registerCredentialCommands(program);
  registerCloudsnapCommands(program);
  registerPolicyCommands(program);
  registerKeyCommands(program);
  registerStatusCommand(program);
  registerApiCommands(program);
  registerAuthCommands(program);
  registerCompletionCommand(program);
  addAliases(program);
  return program;
}

/** Exit status for an error thrown by a command (or by commander itself). */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
  if (err instanceof ApiError) return err.code === 'INVALID_ARGUMENT' ? EXIT_USAGE : EXIT_FAILURE;
  return EXIT_FAILURE;
}

/** Runs `ferry` with `argv` (as process.argv) and resolves to the exit status. */
export async function run(argv: readonly string[]): Promise<number> {
  try {
    await createProgram().parseAsync([...argv]);
    return 0;
  } catch (err: unknown) {
    // commander has already printed its own `error: ...` line (or the help text) for errors raised while parsing.
    const printedByCommander = err instanceof CommanderError && !(err instanceof InvalidArgumentError);
    if (!printedByCommander) {
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    return exitCodeFor(err);
  }
}
