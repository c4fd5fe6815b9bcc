import { describe, expect, it } from 'vitest';
import { tuneAllocator } from './allocator.js';

describe('tuneAllocator', () => {
  it('has glibc take the node allocator settings (this machine runs glibc)', () => {
    expect(tuneAllocator()).toBe(true);
    // Idempotent: the daemon and a benchmark may both call it.
    expect(tuneAllocator()).toBe(true);
  });
});
