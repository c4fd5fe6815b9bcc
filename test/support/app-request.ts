import type { Hono } from 'hono';
import { expect } from 'vitest';

/** Sends a request to a Hono app in process (JSON body when given) and parses the JSON answer. */
export async function requestJson<T>(
  app: Hono,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const response = await app.request(path, init);
  return { status: response.status, body: (await response.json()) as T };
}

/** A job's status as the API answers it (the fields these helpers read). */
interface TaskStatus {
  status: string;
}

/**
 * What the cloud-backup API tests ask of an app: a request that must answer 200, a task's status, and a wait until a
 * task's status meets a condition. `app` is read at each call (tests may build a new app).
 */
export function jobRequests<S extends TaskStatus>(app: () => Hono) {
  async function ok<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await requestJson<T>(app(), method, path, body);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body;
  }
  async function statusOf(taskId: string): Promise<S> {
    const { statuses } = await ok<{ statuses: Record<string, S> }>('POST', '/v1/cloudbackups/status', {
      task_id: taskId,
    });
    return statuses[taskId] as S;
  }
  async function until(taskId: string, done: (s: S) => boolean): Promise<S> {
    for (;;) {
      const status = await statusOf(taskId);
      if (done(status)) return status;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  return { ok, statusOf, until };
}
