/** `ferry node start`. */
import type { Command } from 'commander';
import { runNode } from '../daemon.js';
import { parseHostPort } from '../format.js';

interface StartOptions {
  dataDir?: string;
  apiAddr?: string;
  nbdAddr?: string;
  authOff?: boolean;
  authPublicKey?: string;
  authJwksUrl?: string;
  authIssuer?: string;
  authAudience?: string;
  authMaxTokenTtl?: string;
  directoryRoots?: string;
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
    .option(
      '--directory-roots <dirs>',
      'colon-separated directories under which directory credentials may point (env FERRY_DIRECTORY_ROOTS; ' +
        'default <data dir>/objects; admins may also point elsewhere, never at system directories)',
    )
    .option('--auth-off', 'serve the API without authentication (env FERRY_AUTH=off; logs a warning)')
    .option(
      '--auth-public-key <file>',
      'accept RS256 tokens signed for this PEM public key (env FERRY_AUTH_PUBLIC_KEY_FILE)',
    )
    .option('--auth-jwks-url <url>', 'accept RS256 tokens signed by a key of this JWKS (env FERRY_AUTH_JWKS_URL)')
    .option('--auth-issuer <iss>', 'the iss RS256 tokens must carry (env FERRY_AUTH_ISSUER)')
    .option('--auth-audience <aud>', 'the aud RS256 tokens must carry (env FERRY_AUTH_AUDIENCE)')
    .option(
      '--auth-max-token-ttl <duration>',
      'longest lifetime of a token the node accepts, e.g. 8h, 7d (env FERRY_AUTH_MAX_TOKEN_TTL; default 24h)',
    )
    .action(async (options: StartOptions) => {
      const { authOff, authPublicKey, authJwksUrl, authIssuer, authAudience, authMaxTokenTtl, ...rest } = options;
      await runNode({
        ...rest,
        auth: {
          ...(authOff === true && { off: true }),
          ...(authPublicKey !== undefined && { publicKeyFile: authPublicKey }),
          ...(authJwksUrl !== undefined && { jwksUrl: authJwksUrl }),
          ...(authIssuer !== undefined && { issuer: authIssuer }),
          ...(authAudience !== undefined && { audience: authAudience }),
          ...(authMaxTokenTtl !== undefined && { maxTokenTtl: authMaxTokenTtl }),
        },
      });
    });
}
