/**
 * `ferry api serve`: the API as a stand-alone process, without a block engine: the serverless handler's app
 * (api/lambda/serverless-app.ts) behind an HTTP listener. It answers backup catalog reads (enumerate, catalog, size,
 * credential inspect) itself from the object store of FERRY_CREDENTIAL, and forwards everything else (restores above
 * all) to the node at FERRY_NODE_API_URL. Tokens are checked as `ferry node start` checks them (the admin secret under
 * FERRY_DATA_DIR, FERRY_AUTH_* for RS256); `--auth-off` turns that off with a warning.
 */
import type { Command } from 'commander';
import { createServerlessApp, serverlessOptionsFromEnv, setUpNodeAuth, startApiServer } from '../../api/index.js';
import { globalOptions } from '../context.js';
import { defaultDataDir, log, stopSignal } from '../daemon.js';
import { parseHostPort } from '../format.js';

interface ServeOptions {
  apiAddr: string;
  authOff?: boolean;
}

/** Runs until SIGTERM or SIGINT (one arriving during start-up stops it as soon as it is up). */
async function serve(options: ServeOptions & { dataDir: string | undefined }): Promise<void> {
  const stop = stopSignal();
  const addr = parseHostPort(options.apiAddr);
  const dataDir = options.dataDir ?? process.env.FERRY_DATA_DIR ?? defaultDataDir();
  const auth = await setUpNodeAuth({ dataDir, ...(options.authOff === true && { off: true }), log });
  const serverless = await createServerlessApp({
    ...serverlessOptionsFromEnv({ ...process.env, FERRY_DATA_DIR: dataDir }),
    ...auth,
    logError: (msg, fields) => log('error', msg, fields),
  });
  try {
    const server = await startApiServer(serverless.app, addr.host, addr.port);
    log('info', 'ferry api ready', { api: server.url, node_api: process.env.FERRY_NODE_API_URL ?? null });
    log('info', 'ferry api stopping', { signal: await stop });
    await server.close();
  } finally {
    await serverless.close();
  }
  log('info', 'ferry api stopped');
}

/** Adds `api` and its subcommands to `program`. */
export function registerApiCommands(program: Command): void {
  const api = program
    .command('api')
    .description('run the API on its own: backup catalog from the object store, the rest forwarded to a node');
  api
    .command('serve')
    .description(
      'serve the API without a block engine until SIGTERM or SIGINT (env FERRY_CREDENTIAL: the credential JSON as ' +
        'POST /v1/credentials takes; FERRY_NODE_API_URL: the node restores go to)',
    )
    .option('--api-addr <host:port>', 'listen address', '127.0.0.1:9101')
    .option('--auth-off', 'serve without authentication (logs a warning)')
    .action(async (options: ServeOptions, command: Command) => {
      await serve({ ...options, dataDir: globalOptions(command).dataDir });
    });
}
