/**
 * The memory goal of issue 3, "a 16 GiB volume's backup and restore peak no higher than a 1 GiB volume's", judged on
 * peaks (VmHWM) measured in separate processes.
 *
 * A job's peak varies from run to run by a MiB or two (threads, the JIT and the allocator never do quite the same
 * thing twice), so two jobs that do not differ at all have medians that differ, either way: compared strictly, they
 * fail half the time. The resolution of the measure is taken from the runs themselves: the spread (highest - lowest)
 * of the repeated runs of one job, the larger of the two sizes'. The larger volume's median may be above the
 * smaller's by no more than that, and within each of its runs, what the job added to its peak after it had done the
 * smaller job's bytes (`--mark`) may be no more than that either.
 */

/** What bench/cloudsnap-memory reports of one run that the verdict reads. */
export interface PeakRun {
  /** Peak RSS of the run's process, bytes. */
  vm_hwm: number;
  /** Peak RSS when the job had done the smaller job's bytes, if it noted it. */
  vm_hwm_at_mark?: number;
}

export interface PeakComparison {
  /** Median peak of the larger volume's runs minus the smaller's, bytes. */
  diff: number;
  /** The measure's resolution: the largest spread of one size's runs, bytes. */
  noise: number;
  /** Most that any run of the larger volume added to its peak after its mark, bytes (NaN: no run noted it). */
  addedAfterMark: number;
  met: boolean;
}

/** The middle sample (the mean of the two middle ones for an even count). */
export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function spread(values: readonly number[]): number {
  return Math.max(...values) - Math.min(...values);
}

/** Compares the peaks of the runs of a smaller and a larger volume's job (each at least two runs). */
export function compareMemoryPeaks(small: readonly PeakRun[], large: readonly PeakRun[]): PeakComparison {
  if (small.length < 2 || large.length < 2) throw new Error('comparing peaks needs at least two runs of each size');
  const smallPeaks = small.map((r) => r.vm_hwm);
  const largePeaks = large.map((r) => r.vm_hwm);
  const diff = median(largePeaks) - median(smallPeaks);
  const noise = Math.max(spread(smallPeaks), spread(largePeaks));
  const added = large.filter((r) => r.vm_hwm_at_mark !== undefined).map((r) => r.vm_hwm - (r.vm_hwm_at_mark ?? 0));
  const addedAfterMark = added.length === 0 ? Number.NaN : Math.max(...added);
  return { diff, noise, addedAfterMark, met: diff <= noise && !(addedAfterMark > noise) };
}
