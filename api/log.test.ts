import { describe, expect, it } from 'vitest';
import { createLogger, isSecretField, type Logger, logContext, REDACTED, redact, scrubText } from './log.js';

/** A logger writing into an array of parsed lines. */
function capture(level: 'info' | 'debug' = 'info'): {
  logger: Logger;
  lines: Record<string, unknown>[];
  raw: string[];
} {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = {
    write(text: string): void {
      raw.push(text);
      lines.push(JSON.parse(text) as Record<string, unknown>);
    },
  };
  return { logger: createLogger({ level, destination }), lines, raw };
}

describe('createLogger', () => {
  it('writes one JSON object per line with level label, RFC 3339 time, msg and the fields', () => {
    const { logger, lines, raw } = capture();
    logger.info({ api: 'http://127.0.0.1:9001' }, 'ferry node ready');
    logger.debug('not written at info');
    expect(raw).toHaveLength(1);
    expect(raw[0]?.endsWith('\n')).toBe(true);
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'ferry node ready', api: 'http://127.0.0.1:9001' });
    expect(String(lines[0]?.time)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('censors secret-named fields at the top level and nested up to three levels', () => {
    const { logger, raw, lines } = capture();
    logger.info(
      {
        secret_key: 'top-secret-1',
        headers: { authorization: 'Bearer top-secret-2', 'x-vault-token': 'top-secret-3', accept: 'json' },
        body: { aws_credential: { access_key: 'top-secret-4', secretAccessKey: 'top-secret-5', region: 'eu' } },
        a: { b: { c: { password: 'top-secret-6' } } },
        token: 'top-secret-7',
      },
      'credential created',
    );
    const text = raw.join('');
    for (let i = 1; i <= 7; i++) expect(text).not.toContain(`top-secret-${i}`);
    expect(lines[0]).toMatchObject({
      secret_key: REDACTED,
      headers: { authorization: REDACTED, 'x-vault-token': REDACTED, accept: 'json' },
      body: { aws_credential: { access_key: REDACTED, secretAccessKey: REDACTED, region: 'eu' } },
      a: { b: { c: { password: REDACTED } } },
    });
  });

  it('cuts bearer tokens and JWTs out of messages and string fields', () => {
    const { logger, raw } = capture();
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA';
    logger.error({ error: `request failed: Authorization: Bearer opaque-token-xyz` }, `token was ${jwt}`);
    const text = raw.join('');
    expect(text).not.toContain('opaque-token-xyz');
    expect(text).not.toContain('c2lnbmF0dXJlLXNlY3JldA');
    expect(text).toContain(`Bearer ${REDACTED}`);
  });

  it('adds the request id of the surrounding logContext to every line', async () => {
    const { logger, lines } = capture();
    await logContext.run({ req_id: 'req-42' }, async () => {
      await Promise.resolve();
      logger.info('inside');
    });
    logger.info('outside');
    expect(lines.map((l) => [l.msg, l.req_id])).toEqual([
      ['inside', 'req-42'],
      ['outside', undefined],
    ]);
  });
});

describe('scrubText, isSecretField and redact', () => {
  it('leaves ordinary text alone and cuts credentials out of text', () => {
    expect(scrubText('volume vol-1 backed up in 2 s')).toBe('volume vol-1 backed up in 2 s');
    expect(scrubText('Basic dXNlcjpwYXNz')).toBe(`Basic ${REDACTED}`);
  });

  it('matches names without regard to case, underscores or dashes', () => {
    for (const name of ['secret_key', 'secretKey', 'Secret-Key', 'AUTHORIZATION', 'xVaultToken', 'accessKeyId']) {
      expect(isSecretField(name), name).toBe(true);
    }
    for (const name of ['volume_id', 'key', 'kek', 'task_id', 'status']) expect(isSecretField(name), name).toBe(false);
  });

  it('censors at any depth and inside arrays, keeps errors and leaves the input alone', () => {
    const input = { list: [{ a: { b: { c: { d: { e: { password: 'deep' } } } } } }], err: new Error('boom') };
    const out = redact(input) as typeof input;
    expect(JSON.stringify(out)).not.toContain('deep');
    expect(out.err).toBe(input.err);
    expect(input.list[0]?.a.b.c.d.e.password).toBe('deep');
  });
});
