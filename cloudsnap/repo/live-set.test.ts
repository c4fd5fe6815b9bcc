import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { indexedPack } from './chunk-index.js';
import { LiveSet } from './live-set.js';

it('keeps chunk ids and seen pages on disk, and tells whether a pack holds any live chunk', () => {
  const live = new LiveSet();
  try {
    const ids = Array.from({ length: 5000 }, () => randomBytes(32));
    live.addAll(ids.slice(0, 4000));
    live.addAll(ids.slice(3000, 4000)); // again: counted once
    expect(live.size).toBe(4000);
    expect(live.has(ids[10] as Buffer)).toBe(true);
    expect(live.has(ids[4500] as Buffer)).toBe(false);
    const page = randomBytes(32);
    expect(live.firstSight(page)).toBe(true);
    expect(live.firstSight(page)).toBe(false);
    const ref = { id: randomBytes(32).toString('hex'), salt: randomBytes(32) };
    const entry = (id: Buffer) => ({ id, offset: 0, length: 1, nonce: 1 });
    expect(live.holdsAnyOf(indexedPack(ref, [entry(ids[4100] as Buffer), entry(ids[3999] as Buffer)]))).toBe(true);
    expect(live.holdsAnyOf(indexedPack(ref, [entry(ids[4100] as Buffer), entry(ids[4200] as Buffer)]))).toBe(false);
    expect(live.holdsAnyOf(indexedPack(ref, []))).toBe(false);
  } finally {
    live.close();
  }
});
