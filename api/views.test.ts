import { describe, expect, it } from 'vitest';
import type { VolumeInfo } from '../node/index.js';
import { volumeInspectResponseSchema } from './schemas/volumes.js';
import { volumeView } from './views.js';

const base: VolumeInfo = {
  id: 'v1',
  name: 'db',
  size: 1024 * 1024,
  ha_level: 2,
  labels: {},
  created: '2026-12-06T00:00:00.000Z',
  status: 'up',
  shared: false,
  encrypted: false,
  snapshot_count: 0,
  attached: true,
  bytes_used: 0,
  bytes_used_total: 0,
  replicas: [
    { node_id: 'a', state: 'in-sync' },
    { node_id: 'b', state: 'in-sync' },
  ],
  health: 'healthy',
};

describe('volumeView: replication health (docs/REPLICATION.md, R8)', () => {
  it('is UP while every replica is in sync', () => {
    const view = volumeView(base);
    expect(view.volume.status).toBe('VOLUME_STATUS_UP');
    expect(volumeInspectResponseSchema.parse(view)).toEqual(view);
  });

  it('is DEGRADED while a replica is out of sync, and shows since when and why', () => {
    const view = volumeView({
      ...base,
      health: 'degraded',
      replicas: [
        { node_id: 'a', state: 'in-sync' },
        {
          node_id: 'b',
          state: 'out-of-sync',
          since: '2026-12-06T01:00:00.000Z',
          reason: 'connection reset',
          resync: { kind: 'dirty', copied_bytes: 10, total_bytes: 30, bytes_per_second: 5, eta_seconds: 4 },
        },
      ],
    });
    expect(view.volume.status).toBe('VOLUME_STATUS_DEGRADED');
    expect(view.volume.error).toBeUndefined();
    expect(view.volume.replicas?.[1]).toEqual({
      node_id: 'b',
      state: 'out-of-sync',
      since: '2026-12-06T01:00:00.000Z',
      reason: 'connection reset',
      resync: { kind: 'dirty', copied_bytes: 10, total_bytes: 30, bytes_per_second: 5, eta_seconds: 4 },
    });
    expect(volumeInspectResponseSchema.parse(view)).toEqual(view);
  });

  it('is DOWN, saying why, when no replica is in sync', () => {
    const view = volumeView({
      ...base,
      health: 'down',
      replicas: [
        { node_id: 'a', state: 'out-of-sync' },
        { node_id: 'b', state: 'out-of-sync' },
      ],
    });
    expect(view.volume.status).toBe('VOLUME_STATUS_DOWN');
    expect(view.volume.error).toMatch(/no replica is in sync/);
  });
});
