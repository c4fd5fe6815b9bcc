/** The per-replica resync gauges: read from the volumes' views at scrape time, gone once the replica is in sync. */
import { describe, expect, it } from 'vitest';
import { NodeMetrics } from './metrics.js';

describe('replica resync metrics', () => {
  it('shows copied, total and ETA per volume and replica node while a copy runs, and drops them after', async () => {
    const metrics = new NodeMetrics({ processMetrics: false });
    let copying = true;
    metrics.volumes.watch({
      listVolumes: async () => [
        {
          id: 'v1',
          name: 'db',
          bytes_used: 0,
          snapshot_count: 0,
          replicas: [
            { node_id: 'node-a' },
            copying
              ? { node_id: 'node-b', resync: { copied_bytes: 1024, total_bytes: 4096, eta_seconds: 3 } }
              : { node_id: 'node-b' },
            { node_id: 'node-c', resync: { copied_bytes: 0, total_bytes: 8192 } },
          ],
        },
      ],
    });
    const labels = (node: string) => `{volume="db",volume_id="v1",node="${node}"}`;
    let { body } = await metrics.scrape();
    expect(body).toContain(`ferry_replica_resync_copied_bytes${labels('node-b')} 1024`);
    expect(body).toContain(`ferry_replica_resync_total_bytes${labels('node-b')} 4096`);
    expect(body).toContain(`ferry_replica_resync_eta_seconds${labels('node-b')} 3`);
    expect(body).toContain(`ferry_replica_resync_total_bytes${labels('node-c')} 8192`);
    // No rate yet: no ETA; an in-sync replica has no series.
    expect(body).not.toContain(`ferry_replica_resync_eta_seconds${labels('node-c')}`);
    expect(body).not.toContain(labels('node-a'));
    copying = false;
    ({ body } = await metrics.scrape());
    expect(body).not.toContain(labels('node-b'));
    metrics.close();
  });
});
