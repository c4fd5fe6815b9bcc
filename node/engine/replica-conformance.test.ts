/**
 * The Replica contract on the engine's LocalReplica: real layer files in a temporary directory and a real (SQLite)
 * store. The replicas come from a test host over the engine's parts (node/replication/layer-replica-host.ts) until
 * the engine offers its own ReplicaHost.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LayerReplicaHost } from '../replication/layer-replica-host.js';
import { replicaConformance } from './replica-conformance.js';

const VOLUME = 'vol-conformance';

replicaConformance('LocalReplica (layer files, SQLite store)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-replica-'));
  const host = await LayerReplicaHost.open(dir, 'node-a');
  const replica = await host.open({ volumeId: VOLUME, epoch: 1 });
  return {
    replica,
    size: 64 * 1024 * 1024,
    record: (snapshotId, staged) => host.recordSnapshot(VOLUME, snapshotId, staged),
    openSnapshot: (snapshotId) => host.open({ volumeId: VOLUME, epoch: 1, snapshotId }),
    close: async () => {
      await host.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
