/**
 * `ferry cluster pair token|create|list|inspect|delete`: pairs with another cluster (GET /v1/clusterpairs/token on
 * the destination, POST /v1/clusterpairs on the source), and shows each pair's live status and round trip.
 */
import type { Command } from 'commander';
import type { PairInfoView as PairInfo } from '../../api/index.js';
import { clientFor, output } from '../context.js';
import { formatSize, renderTable } from '../format.js';
import { parseDuration } from './cluster.js';

function statusText(p: PairInfo): string {
  if (p.status === undefined) return '-';
  return p.status === 'Ready' ? 'Ready' : `${p.status}: ${p.reason ?? 'unknown'}`;
}

function pairsTable(pairs: readonly PairInfo[]): string {
  return renderTable(
    ['NAME', 'REMOTE CLUSTER', 'ENDPOINT', 'STATUS', 'RTT', 'CREATED BY'],
    pairs.map((p) => [
      p.name,
      `${p.remote_cluster_name} (${p.id})`,
      p.endpoint,
      statusText(p),
      p.rtt_ms === undefined ? '-' : `${p.rtt_ms} ms`,
      p.initiated ? 'this cluster' : 'the other cluster',
    ]),
  );
}

function pairText(p: PairInfo): string {
  return [
    `Name             : ${p.name}`,
    `Pair ID          : ${p.pair_id}`,
    `Remote cluster   : ${p.remote_cluster_name} (${p.id})`,
    `Endpoint         : ${p.endpoint} (TLS with the pair's key)`,
    `Status           : ${statusText(p)}`,
    `Round trip       : ${p.rtt_ms === undefined ? '-' : `${p.rtt_ms} ms`}`,
    `Bandwidth seen   : ${p.bandwidth_bytes_per_second === undefined ? '-' : `${formatSize(p.bandwidth_bytes_per_second)}/s`}`,
    `Created          : ${p.created} by ${p.initiated ? 'this cluster' : 'the other cluster'}`,
    ...(p.credential_id !== undefined ? [`Credential       : ${p.credential_id}`] : []),
  ].join('\n');
}

export function registerPairCommands(cluster: Command): void {
  const pair = cluster.command('pair').description('pairs with other clusters, for migration and DR (admins)');
  pair
    .command('token')
    .description('a token another cluster pairs with (run on the destination)')
    .option('--ttl <duration>', 'how long the token is valid, e.g. 10m, 1h, 1d (default 1h)', parseDuration)
    .action(async (options: { ttl?: number }, command: Command) => {
      const query = options.ttl !== undefined ? `?ttl_seconds=${options.ttl}` : '';
      const answer = await clientFor(command).request<{ result: { token: string }; expires: string }>(
        'GET',
        `/v1/clusterpairs/token${query}`,
      );
      output(command, answer, () =>
        [
          answer.result.token,
          '',
          `Valid until ${answer.expires}, for one pair. On the other cluster run:`,
          `  ferry cluster pair create NAME --remote <this cluster's API URL> --pair-token ${answer.result.token}`,
        ].join('\n'),
      );
    });
  pair
    .command('create <name>')
    .description('pairs this cluster with the one at --remote, using the token it issued')
    .requiredOption('--remote <url>', "the other cluster's API URL, e.g. http://10.0.0.5:9001")
    // Not --token: that is every command's API bearer token.
    .requiredOption('--pair-token <token>', 'the token from `ferry cluster pair token` on the other cluster')
    .option('--local-url <url>', "this cluster's API URL as the other cluster reaches it (default: this node's)")
    .option('--credential <credential>', 'an object-store credential for migrations through a bucket')
    .action(
      async (
        name: string,
        options: { remote: string; pairToken: string; localUrl?: string; credential?: string },
        command: Command,
      ) => {
        const answer = await clientFor(command).request<{ pair: PairInfo }>('POST', '/v1/clusterpairs', {
          request: {
            name,
            remote_url: options.remote,
            remote_cluster_token: options.pairToken,
            ...(options.localUrl !== undefined && { local_url: options.localUrl }),
            ...(options.credential !== undefined && { credential_id: options.credential }),
          },
        });
        output(command, answer, () => `Paired with ${answer.pair.remote_cluster_name} (${answer.pair.id}) as ${name}`);
      },
    );
  pair
    .command('list')
    .description("this cluster's pairs with their live status")
    .action(async (_options: unknown, command: Command) => {
      const answer = await clientFor(command).request<{ pairs: PairInfo[] }>('GET', '/v1/clusterpairs');
      output(command, answer.pairs, () => (answer.pairs.length === 0 ? 'No cluster pairs.' : pairsTable(answer.pairs)));
    });
  pair
    .command('inspect <pair>')
    .description('one pair: status, round trip, bandwidth its last transfer reached')
    .action(async (ref: string, _options: unknown, command: Command) => {
      const answer = await clientFor(command).request<{ result: { pair_info: PairInfo } }>(
        'GET',
        `/v1/clusterpairs/inspect/${encodeURIComponent(ref)}`,
      );
      output(command, answer.result.pair_info, () => pairText(answer.result.pair_info));
    });
  pair
    .command('delete <pair>')
    .description('deletes the pair here and asks the other cluster to forget it')
    .action(async (ref: string, _options: unknown, command: Command) => {
      const answer = await clientFor(command).request<{ remote_deleted: boolean; remote_error?: string }>(
        'DELETE',
        `/v1/clusterpairs/${encodeURIComponent(ref)}`,
      );
      output(command, answer, () =>
        answer.remote_deleted
          ? `Deleted cluster pair ${ref} (on both clusters)`
          : `Deleted cluster pair ${ref} here; the other cluster could not be told (${answer.remote_error}): delete it there too`,
      );
    });
}
