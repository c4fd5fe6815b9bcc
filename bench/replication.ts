/**
 * Replication transport micro-figure (issue 22): MiB/s of 1 MiB WRITEs from a client to a server over loopback
 * mutual TLS, the server's handler doing nothing. Measures the framing, TLS and window alone; not asserted.
 *
 *   npm run build && node dist/bench/replication.js [--seconds 5] [--window-mib 8]
 */
import { parseArgs } from 'node:util';
import {
  createClusterCa,
  issueNodeCert,
  ReplicationClient,
  ReplicationServer,
  type ServedReplica,
} from '../node/index.js';

const MiB = 1024 * 1024;
const { values: opts } = parseArgs({
  options: { seconds: { type: 'string', default: '5' }, 'window-mib': { type: 'string', default: '8' } },
});

const nullReplica: ServedReplica = {
  read: async (_offset, length) => Buffer.alloc(length),
  write: async () => {},
  writeZeroes: async () => {},
  trim: async () => {},
  flush: async () => {},
};

async function main(): Promise<void> {
  const ca = await createClusterCa({ clusterId: 'bench' });
  const addresses = ['127.0.0.1'];
  const a = await issueNodeCert(ca, { nodeId: 'node-a', addresses });
  const b = await issueNodeCert(ca, { nodeId: 'node-b', addresses });
  const server = await ReplicationServer.listen({
    credentials: { caPem: ca.certPem, ...b },
    handler: { volume: () => ({ epoch: 1, replica: nullReplica }) },
  });
  const client = await ReplicationClient.connect({
    credentials: { caPem: ca.certPem, ...a },
    ...server.address(),
    expectedNodeId: 'node-b',
    maxInFlightBytes: Number(opts['window-mib']) * MiB,
  });
  const target = { volumeId: 'bench', epoch: 1 };
  const data = Buffer.alloc(MiB, 0x5a);
  const seconds = Number(opts.seconds);
  const end = performance.now() + seconds * 1000;
  let written = 0;
  const start = performance.now();
  // Keep the window full: 16 writers each issuing its next write when the last is acknowledged.
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < end) {
        await client.write(target, 0, data);
        written += data.length;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  await client.close();
  await server.close();
  const mibs = written / MiB / elapsed;
  console.log(
    `replication transport: 1 MiB writes to a null handler over loopback mutual TLS (window ${opts['window-mib']} MiB)`,
  );
  console.log(
    JSON.stringify({ mib_per_s: Math.round(mibs), writes: written / MiB, seconds: Number(elapsed.toFixed(2)) }),
  );
}

await main();
