import { describe, expect, it } from 'vitest';
import { compareMemoryPeaks, median } from './memory-verdict.js';

const MiB = 1024 * 1024;
const runs = (...peaks: number[]): { vm_hwm: number }[] => peaks.map((p) => ({ vm_hwm: p * MiB }));

describe('compareMemoryPeaks', () => {
  it('takes the median of each size and the largest spread of one size as the noise', () => {
    const c = compareMemoryPeaks(runs(168, 167.5, 169.5, 168, 168.5), runs(169, 170, 169.5, 170.5, 169));
    expect(c.diff).toBe(1.5 * MiB);
    expect(c.noise).toBe(2 * MiB);
    expect(c.met).toBe(true);
  });

  it('says no when the larger volume peaks higher than the runs vary', () => {
    // Every 16 GiB run 3 MiB above the 1 GiB ones: growth with the volume, not noise.
    const c = compareMemoryPeaks(runs(168, 168.5, 169, 168.2, 168.7), runs(171, 171.5, 172, 171.2, 171.7));
    expect(c.diff).toBeCloseTo(3 * MiB);
    expect(c.met).toBe(false);
  });

  it('says yes when the larger volume peaks lower', () => {
    expect(compareMemoryPeaks(runs(170, 170, 170), runs(169, 169, 169)).met).toBe(true);
  });

  it('with runs that do not vary, allows nothing above', () => {
    expect(compareMemoryPeaks(runs(170, 170, 170), runs(170, 170, 170)).met).toBe(true);
    expect(compareMemoryPeaks(runs(170, 170, 170), runs(170.1, 170.1, 170.1)).met).toBe(false);
  });

  it('says no when a long run added more to its peak after the mark than the runs vary', () => {
    const small = runs(168, 168.5, 169);
    const large = [168.2, 168.6, 168.9].map((p) => ({ vm_hwm: p * MiB, vm_hwm_at_mark: p * MiB }));
    expect(compareMemoryPeaks(small, large)).toMatchObject({ addedAfterMark: 0, met: true });
    const late = large.map((r, i) => (i === 1 ? { ...r, vm_hwm_at_mark: r.vm_hwm - 4 * MiB } : r));
    expect(compareMemoryPeaks(small, late)).toMatchObject({ addedAfterMark: 4 * MiB, met: false });
  });

  it('needs two runs of each size to know the noise', () => {
    expect(() => compareMemoryPeaks(runs(168), runs(169, 170))).toThrow(/two runs/);
  });
});

describe('median', () => {
  it('is the middle sample, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});
