/**
 * When intervals fire, in UTC: the latest occurrence at or before a time, and the first one after it. Periodic
 * intervals are counted from an anchor (the schedule's creation), so a restart does not shift them.
 */
import { type ScheduleInterval, WEEKDAYS } from './types.js';

const DAY = 86_400_000;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

function monthly(year: number, month: number, day: number, hour: number, minute: number): number {
  const y = year + Math.floor(month / 12);
  const m = ((month % 12) + 12) % 12;
  return Date.UTC(y, m, Math.min(day, daysInMonth(y, m)), hour, minute);
}

/** A stable name of an interval, used in labels and in the scheduler's state: `daily-0200`, `periodic-3600`. */
export function intervalKey(i: ScheduleInterval): string {
  const hm = (h: number, m: number): string => `${String(h).padStart(2, '0')}${String(m).padStart(2, '0')}`;
  if ('periodic' in i) return `periodic-${i.periodic.seconds}`;
  if ('daily' in i) return `daily-${hm(i.daily.hour, i.daily.minute)}`;
  if ('weekly' in i) return `weekly-${i.weekly.day.slice(0, 3)}-${hm(i.weekly.hour, i.weekly.minute)}`;
  return `monthly-${i.monthly.day}-${hm(i.monthly.hour, i.monthly.minute)}`;
}

/** The latest time <= `now` (epoch ms) at which the interval fires. */
export function previousOccurrence(i: ScheduleInterval, now: number, anchor: number): number {
  if ('periodic' in i) {
    const p = i.periodic.seconds * 1000;
    return anchor + Math.floor((now - anchor) / p) * p;
  }
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const mo = d.getUTCMonth();
  const date = d.getUTCDate();
  if ('daily' in i) {
    const t = Date.UTC(y, mo, date, i.daily.hour, i.daily.minute);
    return t <= now ? t : t - DAY;
  }
  if ('weekly' in i) {
    const back = (d.getUTCDay() - WEEKDAYS.indexOf(i.weekly.day) + 7) % 7;
    const t = Date.UTC(y, mo, date - back, i.weekly.hour, i.weekly.minute);
    return t <= now ? t : t - 7 * DAY;
  }
  const t = monthly(y, mo, i.monthly.day, i.monthly.hour, i.monthly.minute);
  return t <= now ? t : monthly(y, mo - 1, i.monthly.day, i.monthly.hour, i.monthly.minute);
}

/** The first time > `after` (epoch ms) at which the interval fires. */
export function nextOccurrence(i: ScheduleInterval, after: number, anchor: number): number {
  if ('periodic' in i) return previousOccurrence(i, after, anchor) + i.periodic.seconds * 1000;
  if ('daily' in i) return previousOccurrence(i, after, anchor) + DAY;
  if ('weekly' in i) return previousOccurrence(i, after, anchor) + 7 * DAY;
  const d = new Date(previousOccurrence(i, after, anchor));
  return monthly(d.getUTCFullYear(), d.getUTCMonth() + 1, i.monthly.day, i.monthly.hour, i.monthly.minute);
}

/**
 * The intervals due at `now`: those whose latest occurrence is later than when they last fired (or than the
 * anchor, for one that never fired). Only the latest occurrence counts, so any number of missed occurrences (the node
 * was down, the clock jumped forward) make one run, never a burst. A time in the future (the clock jumped back) is
 * never due: `rewoundFires` gives the state to record so that the interval fires at its next occurrence.
 */
export function dueIntervals(
  intervals: readonly ScheduleInterval[],
  lastFired: Readonly<Record<string, string>>,
  anchor: number,
  now: number,
): ScheduleInterval[] {
  return intervals.filter((i) => {
    const recorded = lastFired[intervalKey(i)];
    const parsed = recorded === undefined ? Number.NaN : Date.parse(recorded);
    const last = Number.isFinite(parsed) ? parsed : anchor;
    return last <= now && previousOccurrence(i, now, anchor) > last;
  });
}

/**
 * After the clock jumped back: the `lastFired` entries (or the anchor, for intervals that never fired) that lie in
 * the future, moved to each interval's latest occurrence before `now`; undefined when none does. Recording these
 * makes each interval fire at its next occurrence: no run at once, and no wait for the clock to catch up.
 */
export function rewoundFires(
  intervals: readonly ScheduleInterval[],
  lastFired: Readonly<Record<string, string>>,
  anchor: number,
  now: number,
): Record<string, string> | undefined {
  let changed: Record<string, string> | undefined;
  for (const i of intervals) {
    const key = intervalKey(i);
    const recorded = lastFired[key];
    const parsed = recorded === undefined ? Number.NaN : Date.parse(recorded);
    const last = Number.isFinite(parsed) ? parsed : anchor;
    if (last <= now) continue;
    changed ??= { ...lastFired };
    changed[key] = new Date(previousOccurrence(i, now, anchor)).toISOString();
  }
  return changed;
}

/** The earliest next firing of any interval after `now`; undefined without intervals. */
export function nextRun(intervals: readonly ScheduleInterval[], anchor: number, now: number): number | undefined {
  let best: number | undefined;
  for (const i of intervals) {
    const t = nextOccurrence(i, now, anchor);
    if (best === undefined || t < best) best = t;
  }
  return best;
}
