/**
 * `ferry auth nbd-key`: fetches the caller's NBD TLS-PSK key from the node and writes it as a GnuTLS psk file
 * (`identity:hexkey`, mode 0600) for nbds:// clients (nbdinfo, nbdcopy, nbdsh, qemu's tls-creds-psk). See docs/NBD.md.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { clientFor, globalOptions, output } from '../context.js';

interface NbdKeyAnswer {
  identity: string;
  psk_key: string;
}

/** Adds `nbd-key` under `auth`. */
export function registerNbdKeyCommand(auth: Command): void {
  auth
    .command('nbd-key')
    .description('write your NBD TLS-PSK key to a psk file, for nbds:// clients (nbdinfo, nbdcopy, qemu-img)')
    .option('--out <file>', 'the psk file to write (mode 0600)', 'nbd.psk')
    .action(async (options: { out: string }, command: Command) => {
      const answer = await clientFor(command).request<NbdKeyAnswer>('POST', '/v1/auth/nbd-key');
      const file = resolve(options.out);
      await writeFile(file, `${answer.identity}:${answer.psk_key}\n`, { mode: 0o600 });
      await chmod(file, 0o600);
      const host = nbdHost(globalOptions(command).api ?? process.env.FERRY_API_URL);
      const uri = `nbds://${encodeURIComponent(answer.identity)}@${host}:10809/VOLUME?tls-psk-file=${file}`;
      output(command, { identity: answer.identity, file, uri }, () =>
        [`wrote the NBD key of ${answer.identity} to ${file}`, `connect with: nbdinfo '${uri}'`].join('\n'),
      );
    });
}

/** The host of the API URL (where the node's NBD server most likely is), else localhost. */
function nbdHost(apiUrl: string | undefined): string {
  if (apiUrl === undefined) return 'localhost';
  try {
    return new URL(apiUrl).host.replace(/:\d+$/, '');
  } catch {
    return 'localhost';
  }
}
