import { describe, expect, it } from 'vitest';
import { storeTuningFromEnv } from './open.js';

describe('storeTuningFromEnv', () => {
  it('leaves every default when nothing is set', () => {
    expect(storeTuningFromEnv({})).toEqual({
      read: { attempts: undefined, idleTimeoutMs: undefined },
      requestTimeoutMs: undefined,
    });
  });

  it('reads attempts, the read idle timeout and the request timeout', () => {
    const env = {
      FERRY_STORE_READ_ATTEMPTS: '8',
      FERRY_STORE_READ_IDLE_TIMEOUT_MS: '5000',
      FERRY_STORE_REQUEST_TIMEOUT_MS: '20000',
    };
    expect(storeTuningFromEnv(env)).toEqual({ read: { attempts: 8, idleTimeoutMs: 5000 }, requestTimeoutMs: 20000 });
  });

  it.each(['0', '-1', '1.5', 'soon'])('refuses %s, naming the variable', (value) => {
    expect(() => storeTuningFromEnv({ FERRY_STORE_READ_IDLE_TIMEOUT_MS: value })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'FERRY_STORE_READ_IDLE_TIMEOUT_MS' }),
    );
  });
});
