/** readJsonBody's refusals that no schema can express: a `__proto__` key anywhere, and bodies nested very deep. */
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { errorResponse } from './errors.js';
import { createVolumeSchema } from './schemas/index.js';
import { readJsonBody } from './validate.js';

function app(): Hono {
  const a = new Hono();
  a.onError((err, c) => errorResponse(c, err, () => {}));
  a.post('/', async (c) => c.json(await readJsonBody(c, createVolumeSchema)));
  return a;
}

async function post(body: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app().request('/', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('readJsonBody', () => {
  it('refuses a "__proto__" key, also escaped and nested, instead of dropping it', async () => {
    for (const labels of ['{"__proto__":"x"}', '{"\\u005f_proto__":"x"}']) {
      const res = await post(`{"name":"v","spec":{"size":4096},"labels":${labels}}`);
      expect(res).toMatchObject({ status: 400, body: { code: 'INVALID_ARGUMENT', field: 'body' } });
      expect(res.body.message).toContain('__proto__');
    }
  });

  it('still accepts the same body without it', async () => {
    const res = await post('{"name":"v","spec":{"size":4096},"labels":{"proto":"x"}}');
    expect(res).toMatchObject({ status: 200, body: { labels: { proto: 'x' } } });
  });

  it('answers 400 on body for JSON nested deeper than the parser goes', async () => {
    const res = await post(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    expect(res).toMatchObject({ status: 400, body: { field: 'body' } });
  });
});
