/**
 * OpenStorageMigrate rpcs for live migration to a paired cluster: Start POST /v1/volumemigrate (one task per volume;
 * `cutover: manual` waits for Ferry's POST /v1/volumemigrate/cutover), Status POST /v1/volumemigrate/status, Cancel
 * POST /v1/volumemigrate/cancel (the source stays as it was; what was made on the destination is removed). Admins
 * only (api/auth/policy.ts).
 */
import { Hono } from 'hono';
import type { z } from 'zod';
import { FerryError } from '../../common/index.js';
import type { MigrationRecord } from '../migrate/records.js';
import type { MigrationService } from '../migrate/service.js';
import { addOperations, operationsWith } from '../operation.js';
import {
  type migrateInfoSchema,
  migrateStartSchema,
  migrateStatusSchema,
  migrateTaskSchema,
} from '../schemas/index.js';

const define = operationsWith<MigrationService | undefined>();

function migrationsOf(service: MigrationService | undefined): MigrationService {
  if (service === undefined) {
    throw new FerryError(
      'UNAVAILABLE',
      'this server is not a storage node; ask a node started with `ferry node start`',
    );
  }
  return service;
}

/** CloudMigrateInfo of a migration. */
export function migrateInfo(r: MigrationRecord): z.infer<typeof migrateInfoSchema> {
  return {
    task_id: r.task_id,
    cluster_id: r.pair_id,
    pair_name: r.pair_name,
    local_volume_id: r.volume_id,
    local_volume_name: r.volume_name,
    ...(r.remote_volume_id !== undefined && { remote_volume_id: r.remote_volume_id }),
    current_stage: r.stage,
    status: r.status,
    ...(r.error_reason !== undefined && { error_reason: r.error_reason }),
    start_time: r.start_time,
    ...(r.completed_time !== undefined && { completed_time: r.completed_time }),
    bytes_total: r.bytes_total,
    bytes_done: r.bytes_done,
    ...(r.eta_seconds !== undefined && { eta_seconds: r.eta_seconds }),
    pass: r.pass,
    bytes_sent: r.bytes_sent,
    wire_bytes: r.wire_bytes,
    cutover: r.cutover,
    ...(r.cutover_requested === true && { cutover_requested: true }),
    ...(r.writes_held_ms !== undefined && { writes_held_ms: r.writes_held_ms }),
    ...(r.remote_cleanup !== undefined && { remote_cleanup: r.remote_cleanup }),
    ...(r.snapshots !== undefined && {
      snapshots: r.snapshots.map((s) => s.name),
      snapshots_done: r.snapshots_done ?? 0,
    }),
    node_id: r.node_id,
  };
}

export const migrateOperations = [
  define({
    method: 'post',
    path: '/v1/volumemigrate',
    operationId: 'migrateStart',
    tag: 'Migration',
    summary: 'Starts live migrations of volumes to a paired cluster (cluster_id: the pair), one task per volume.',
    rpc: 'OpenStorageMigrate.Start',
    body: migrateStartSchema,
    handler: async (c, { body }, service) => {
      const volumes = [...(body.volume !== undefined ? [body.volume.volume_id] : []), ...(body.volumes ?? [])];
      const started = await migrationsOf(service).start({
        pair: body.cluster_id,
        volumes,
        ...(body.cutover !== undefined && { cutover: body.cutover }),
        ...(body.task_id !== undefined && { task_id: body.task_id }),
        ...(body.snapshots !== undefined && { snapshots: body.snapshots }),
      });
      return c.json({ result: { task_id: started[0]?.task_id ?? '' }, migrations: started.map(migrateInfo) });
    },
  }),
  define({
    method: 'post',
    path: '/v1/volumemigrate/status',
    operationId: 'migrateStatus',
    tag: 'Migration',
    summary: "Migrations (one task, one pair's, or all), with stage, pass, bytes and ETA.",
    rpc: 'OpenStorageMigrate.Status',
    body: migrateStatusSchema,
    handler: async (c, { body }, service) => {
      const s = migrationsOf(service);
      let list = await s.list(body.request?.task_id);
      const pair = body.request?.cluster_id;
      if (pair !== undefined) list = list.filter((m) => m.pair_id === pair || m.pair_name === pair);
      const info: Record<string, { list: z.infer<typeof migrateInfoSchema>[] }> = {};
      for (const m of list) {
        const group = info[m.pair_id] ?? { list: [] };
        group.list.push(migrateInfo(m));
        info[m.pair_id] = group;
      }
      return c.json({ result: { info }, migrations: list.map(migrateInfo) });
    },
  }),
  define({
    method: 'post',
    path: '/v1/volumemigrate/cancel',
    operationId: 'migrateCancel',
    tag: 'Migration',
    summary: 'Cancels a migration: the source stays as it was, what was made on the destination is removed.',
    rpc: 'OpenStorageMigrate.Cancel',
    body: migrateTaskSchema,
    handler: async (c, { body }, service) =>
      c.json({ migration: migrateInfo(await migrationsOf(service).cancel(body.request.task_id)) }),
  }),
  define({
    method: 'post',
    path: '/v1/volumemigrate/cutover',
    operationId: 'migrateCutover',
    tag: 'Migration',
    summary: 'Cuts over a migration started with cutover manual (writes held, last delta, destination writable).',
    body: migrateTaskSchema,
    handler: async (c, { body }, service) =>
      c.json({ migration: migrateInfo(await migrationsOf(service).cutover(body.request.task_id)) }),
  }),
];

/** Routes of the migration rpcs, to mount under `/v1`. */
export function migrateRoutes(service: MigrationService | undefined): Hono {
  return addOperations(new Hono(), migrateOperations, service);
}
