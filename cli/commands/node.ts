/** `ferry node start`. */
import type { Command } from 'commander';
import { clientFor, globalOptions, output } from '../context.js';
import { runNode } from '../daemon.js';
import { parseHostPort } from '../format.js';
import { listNodes, nodesTable } from './cluster.js';

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
  kvdb?: string;
  clusterId?: string;
  labels?: string;
  replAddr?: string;
  clusterSecretFile?: string;
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
    .option(
      '--kvdb <etcd:url,...>',
      'join a cluster whose store is this etcd, e.g. etcd:http://10.0.0.1:2379,http://10.0.0.2:2379 (env FERRY_KVDB; default: run alone on the embedded store)',
    )
    .option('--cluster-id <id>', 'the cluster to join (or create), the same on every node (env FERRY_CLUSTER_ID)')
    .option(
      '--cluster-secret-file <file>',
      'the cluster secret (>= 32 random bytes), the same file on every node (env FERRY_CLUSTER_SECRET_FILE; the first node of a new cluster writes <data dir>/cluster.secret when none is given)',
    )
    .option('--labels <k=v,...>', 'node labels for placement, e.g. rack=r1,zone=z1,region=eu (env FERRY_NODE_LABELS)')
    .option(
      '--repl-addr <host:port>',
      'replication listen address, mutual TLS (env FERRY_REPL_ADDR; default port 9002 on the API host)',
      checkHostPort,
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
  node
    .command('list')
    .description('the nodes of the cluster: status, labels, capacity, volumes and replicas held (-o wide: addresses)')
    .action(async (_options: unknown, command: Command) => {
      const nodes = await listNodes(clientFor(command));
      output(command, { nodes }, (wide) => nodesTable(nodes, wide));
    });
  node
    .command('maintenance <node-id>')
    .description('put a node in maintenance (placement skips it) with --enter, take it out with --exit (admins)')
    .option('--enter', 'enter maintenance')
    .option('--exit', 'exit maintenance')
    .action(async (nodeId: string, options: { enter?: boolean; exit?: boolean }, command: Command) => {
      if (options.enter === options.exit) throw new Error('give exactly one of --enter and --exit');
      const answer = await clientFor(command).request<{ node: { id: string; state: string } }>(
        'POST',
        `/v1/nodes/maintenance/${encodeURIComponent(nodeId)}`,
        { maintenance: options.enter === true },
      );
      output(command, answer, () => `node ${answer.node.id}: ${answer.node.state}`);
    });
}
