import { describe, expect, it } from 'vitest';
import { coalesce } from './ranges.js';

describe('coalesce', () => {
  it('sorts, drops empty spans and merges overlapping and touching ones', () => {
    expect(
      coalesce([
        { start: 100, end: 200 },
        { start: 0, end: 10 },
        { start: 150, end: 300 },
        { start: 300, end: 310 },
        { start: 50, end: 50 },
      ]),
    ).toEqual([
      [0, 10],
      [100, 210],
    ]);
  });

  it('merges the neighbours with the smallest gaps when there are too many, covering every span', () => {
    const spans = Array.from({ length: 2000 }, (_, i) => ({ start: i * 100 + (i % 7) * 3, end: i * 100 + 50 }));
    const out = coalesce(spans, 512);
    expect(out.length).toBeLessThanOrEqual(512);
    expect(out.length).toBeGreaterThan(1);
    for (const s of spans) {
      expect(out.some(([o, l]) => o <= s.start && s.end <= o + l)).toBe(true);
    }
    for (let i = 1; i < out.length; i++) {
      const [po, pl] = out[i - 1] as [number, number];
      expect((out[i] as [number, number])[0]).toBeGreaterThan(po + pl);
    }
  });
});
