import type { Hono } from 'hono';

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
