import { describe, expect, it } from 'vitest';
import {
  allocatorStats,
  missingEnvSettings,
  missingV8Flags,
  NODE_ENV_SETTINGS,
  NODE_V8_FLAGS,
  trimAllocator,
  tuneAllocator,
} from './allocator.js';

describe('tuneAllocator', () => {
  it('has glibc take the node allocator settings (this machine runs glibc)', () => {
    expect(tuneAllocator()).toBe(true);
    // Idempotent: the daemon and a benchmark may both call it.
    expect(tuneAllocator()).toBe(true);
  });
});

describe('allocatorStats / trimAllocator', () => {
  it('reports malloc figures over all arenas, and trimming never adds to what is held free', () => {
    const before = allocatorStats();
    expect(before).not.toBeNull();
    const { heap, inUse, free, mapped } = before as NonNullable<typeof before>;
    for (const n of [heap, inUse, free, mapped]) expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
    expect(inUse + free).toBeLessThanOrEqual(heap + mapped + 1);
    expect(typeof trimAllocator()).toBe('boolean');
    // Trimming gives pages back; it does not change what is allocated.
    expect((allocatorStats() as NonNullable<typeof before>).inUse).toBeLessThanOrEqual(inUse + 1024 * 1024);
  });
});

describe('missingV8Flags', () => {
  it('names the node V8 flags this process was not started with', () => {
    const started = process.execArgv.includes(NODE_V8_FLAGS[0]) || (process.env.NODE_OPTIONS ?? '').includes('semi');
    expect(missingV8Flags()).toEqual(started ? [] : [...NODE_V8_FLAGS]);
  });
});

describe('missingEnvSettings', () => {
  it('names each variable a node starts with that is unset or set otherwise, as NAME=value', () => {
    expect(NODE_ENV_SETTINGS.MALLOC_ARENA_MAX).toBe('2');
    expect(missingEnvSettings({})).toEqual(['MALLOC_ARENA_MAX=2']);
    expect(missingEnvSettings({ MALLOC_ARENA_MAX: '8' })).toEqual(['MALLOC_ARENA_MAX=2']);
    expect(missingEnvSettings({ ...NODE_ENV_SETTINGS, PATH: '/bin' })).toEqual([]);
  });
});
