/**
 * Requests to an in-process app as one of several principals (a bearer token each), for the tenancy tests: send,
 * expect 200, follow a cloud backup job, and back a fresh volume up.
 */
import { randomBytes } from 'node:crypto';
import type { Hono } from 'hono';
import { expect } from 'vitest';
import { isFinal, type JobStatus } from '../../cloudsnap/index.js';
import type { VolumeEngine } from '../../node/index.js';

/** What the requests need, read at each call (tests set these up in beforeAll). */
export interface TenantContext {
  app: Hono;
  /** Bearer token by principal name. */
  tokens: ReadonlyMap<string, string>;
  /** The node's engine, to write a new volume's data directly. */
  engine: VolumeEngine;
}

export interface TenantRequests<W extends string> {
  send(
    who: W,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** `send`, expecting 200; its JSON body. */
  ok<T>(who: W, method: string, path: string, body?: unknown): Promise<T>;
  /** Polls the status route until the task ends; its last status. */
  waitForTask(who: W, taskId: string): Promise<JobStatus>;
  /** A 4 MiB volume of `who` with 64 KiB written, backed up through `cred` (the backup must end Done); its id. */
  backUp(who: W, volume: string, cred: string): Promise<string>;
}

export function tenantRequests<W extends string>(context: () => TenantContext): TenantRequests<W> {
  const send = async (who: W, method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { authorization: `Bearer ${context().tokens.get(who)}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await context().app.request(path, {
      method,
      headers,
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
  };
  const ok = async <T>(who: W, method: string, path: string, body?: unknown): Promise<T> => {
    const response = await send(who, method, path, body);
    expect(response.status, `${who} ${method} ${path}: ${JSON.stringify(response.body)}`).toBe(200);
    return response.body as T;
  };
  const waitForTask = async (who: W, taskId: string): Promise<JobStatus> => {
    for (;;) {
      const { statuses } = await ok<{ statuses: Record<string, JobStatus> }>(who, 'POST', '/v1/cloudbackups/status', {
        task_id: taskId,
      });
      const job = statuses[taskId] as JobStatus;
      if (isFinal(job)) return job;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const backUp = async (who: W, volume: string, cred: string): Promise<string> => {
    const { volume_id } = await ok<{ volume_id: string }>(who, 'POST', '/v1/volumes', {
      name: volume,
      spec: { size: 4 * 1024 * 1024 },
    });
    const dev = await context().engine.openExport(volume);
    await dev.write(0, randomBytes(64 * 1024));
    await dev.flush();
    await dev.close();
    const { task_id } = await ok<{ task_id: string }>(who, 'POST', '/v1/cloudbackups', {
      volume_id,
      credential_id: cred,
    });
    const job = await waitForTask(who, task_id);
    expect(job.status, job.info.join('; ')).toBe('Done');
    return String(job.backup_id);
  };
  return { send, ok, waitForTask, backUp };
}
