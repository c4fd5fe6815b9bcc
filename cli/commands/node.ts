/** `ferry node start`. */
import type { Command } from 'commander';
import { globalOptions } from '../context.js';
import { runNode } from '../daemon.js';
import { parseHostPort } from '../format.js';

interface StartOptions {
  apiAddr?: string;
  nbdAddr?: string;
  nbdTls?: string;
  authOff?: boolean;
  authPublicKey?: string;
  authJwksUrl?: string;
  authIssuer?: string;
  authAudience?: string;
  spaceWarnPercent?: number;
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
    .option(
      '--api-addr <host:port>',
      'HTTP API listen address (env FERRY_API_ADDR; default 127.0.0.1:9001)',
      checkHostPort,
    )
    .option('--nbd-addr <host:port>', 'NBD listen address (env FERRY_NBD_ADDR; default 127.0.0.1:10809)', checkHostPort)
    .option(
      '--nbd-tls <mode>',
      'NBD TLS (TLS-PSK, see ferry auth nbd-key): off, optional or require (env FERRY_NBD_TLS; default require unless the NBD address is loopback, where it is optional)',
    )
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
      '--space-warn-percent <n>',
      'report the data directory as warn at this percentage used (env FERRY_SPACE_WARN_PERCENT; default 90)',
      Number,
    )
    .option(
      '--auth-max-token-ttl <duration>',
      'longest lifetime of a token the node accepts, e.g. 8h, 7d (env FERRY_AUTH_MAX_TOKEN_TTL; default 24h)',
    )
    .action(async (options: StartOptions, command: Command) => {
      const { authOff, authPublicKey, authJwksUrl, authIssuer, authAudience, authMaxTokenTtl, ...rest } = options;
      const { dataDir } = globalOptions(command);
      await runNode({
        ...rest,
        ...(dataDir !== undefined && { dataDir }),
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
