/** `ferry node start`. */
import type { Command } from 'commander';
import { runNode } from '../daemon.js';
import { parseHostPort } from '../format.js';

interface StartOptions {
  dataDir?: string;
  apiAddr?: string;
  nbdAddr?: string;
}

function checkHostPort(text: string): string {
  parseHostPort(text);
  return text;
}

/** Adds `node` and its subcommands to `program`. */
export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('run a storage node');
  node
    .command('start')
    .description('run the storage node in the foreground (engine, NBD export, HTTP API) until SIGTERM or SIGINT')
    .option('--data-dir <dir>', 'data directory (env FERRY_DATA_DIR; default /var/lib/ferry as root, else ~/.ferry)')
    .option(
      '--api-addr <host:port>',
      'HTTP API listen address (env FERRY_API_ADDR; default 127.0.0.1:9001)',
      checkHostPort,
    )
    .option('--nbd-addr <host:port>', 'NBD listen address (env FERRY_NBD_ADDR; default 127.0.0.1:10809)', checkHostPort)
    .action(async (options: StartOptions) => {
      await runNode(options);
    });
}
