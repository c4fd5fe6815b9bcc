import { describe, expect, it } from 'vitest';
import { bucketOf, hasRules, isoWeek, planRetention, type RetentionItem } from './retention.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** One backup every `stepMs` from `start`, `n` of them, ids b000, b001, ... (oldest first). */
function series(start: string, stepMs: number, n: number): RetentionItem[] {
  const t0 = Date.parse(start);
  return Array.from({ length: n }, (_, i) => ({ id: `b${String(i).padStart(3, '0')}`, time: t0 + i * stepMs }));
}

function kept(items: RetentionItem[], rules: Parameters<typeof planRetention>[1], now?: number): string[] {
  return planRetention(items, rules, now).keep.map((k) => k.id);
}

describe('calendar buckets (UTC)', () => {
  it('names hours, days, months and years', () => {
    const ms = Date.parse('2024-03-09T17:45:00Z');
    expect(bucketOf('hourly', ms)).toBe('2024-03-09T17');
    expect(bucketOf('daily', ms)).toBe('2024-03-09');
    expect(bucketOf('monthly', ms)).toBe('2024-03');
    expect(bucketOf('yearly', ms)).toBe('2024');
  });

  it('uses ISO weeks: Monday starts a week; the days around New Year belong to the week of their Thursday', () => {
    expect(isoWeek(Date.parse('2024-01-01T00:00:00Z'))).toBe('2024-W01'); // a Monday
    expect(isoWeek(Date.parse('2023-12-31T23:59:59Z'))).toBe('2023-W52'); // the Sunday before
    expect(isoWeek(Date.parse('2021-01-03T12:00:00Z'))).toBe('2020-W53'); // 2020 has 53 weeks
    expect(isoWeek(Date.parse('2026-12-31T12:00:00Z'))).toBe('2026-W53');
    expect(isoWeek(Date.parse('2019-12-30T00:00:00Z'))).toBe('2020-W01'); // Monday of week 1 of 2020
  });

  it('does not use the local time zone', () => {
    // 23:30 UTC on the 31st is still in that day and month whatever TZ the process runs in.
    const ms = Date.parse('2024-01-31T23:30:00Z');
    expect(bucketOf('daily', ms)).toBe('2024-01-31');
    expect(bucketOf('monthly', ms)).toBe('2024-01');
  });
});

describe('planRetention', () => {
  it('keeps everything when there are no rules (never expires all backups by omission)', () => {
    const items = series('2024-01-01T00:00:00Z', HOUR, 5);
    expect(hasRules({})).toBe(false);
    expect(hasRules({ daily: 0, last: 0 })).toBe(false);
    const plan = planRetention(items, [{}]);
    expect(plan.expire).toEqual([]);
    expect(plan.keep).toHaveLength(5);
    expect(planRetention(items, []).expire).toEqual([]);
  });

  it('keeps the newest N with last, newest first, and expires the rest', () => {
    const items = series('2024-01-01T00:00:00Z', HOUR, 10);
    const plan = planRetention(items, [{ last: 3 }]);
    expect(plan.keep.map((k) => k.id)).toEqual(['b009', 'b008', 'b007']);
    expect(plan.expire).toEqual(['b006', 'b005', 'b004', 'b003', 'b002', 'b001', 'b000']);
    expect(plan.keep[0]?.reasons).toEqual(['last']);
  });

  it('keeps the newest backup of each of the last N days (hourly backups over 4 days, daily 3)', () => {
    const items = series('2024-05-01T00:30:00Z', HOUR, 96); // 4 whole days, b095 = 05-04 23:30
    const plan = planRetention(items, [{ daily: 3 }]);
    expect(plan.keep.map((k) => k.id)).toEqual(['b095', 'b071', 'b047']);
    expect(plan.keep.map((k) => k.reasons[0])).toEqual(['daily 2024-05-04', 'daily 2024-05-03', 'daily 2024-05-02']);
    expect(plan.expire).toHaveLength(93);
  });

  it('counts buckets that hold a backup, not calendar time: a gap does not use up the count', () => {
    const items: RetentionItem[] = [
      { id: 'jan', time: '2024-01-15T00:00:00Z' },
      { id: 'mar', time: '2024-03-15T00:00:00Z' },
      { id: 'jun', time: '2024-06-15T00:00:00Z' },
    ];
    expect(kept(items, [{ monthly: 2 }])).toEqual(['jun', 'mar']);
  });

  it('keeps one backup per week: the newest of that ISO week', () => {
    const items: RetentionItem[] = [
      { id: 'mon', time: '2024-04-08T01:00:00Z' },
      { id: 'sun', time: '2024-04-14T23:00:00Z' }, // same week as mon
      { id: 'next-mon', time: '2024-04-15T00:00:00Z' },
    ];
    expect(kept(items, [{ weekly: 5 }])).toEqual(['next-mon', 'sun']);
  });

  it('unites rules: a backup kept by several rules shows every reason', () => {
    const items = series('2023-12-31T22:00:00Z', HOUR, 4); // 22:00, 23:00, 00:00 (new year), 01:00
    const plan = planRetention(items, [{ last: 1, hourly: 2, daily: 2, yearly: 2 }]);
    expect(plan.keep.map((k) => k.id)).toEqual(['b003', 'b002', 'b001']);
    expect(plan.keep[0]?.reasons).toEqual(['last', 'hourly 2024-01-01T01', 'daily 2024-01-01', 'yearly 2024']);
    expect(plan.keep[2]?.reasons).toEqual(['daily 2023-12-31', 'yearly 2023']);
    expect(plan.expire).toEqual(['b000']);
  });

  it('unites rule sets (per-interval retain next to GFS)', () => {
    const items = series('2024-01-01T00:00:00Z', DAY, 10);
    expect(kept(items, [{ last: 2 }, { monthly: 1 }])).toEqual(['b009', 'b008']);
    expect(kept(items, [{ last: 1 }, { within_days: 3 }], Date.parse('2024-01-10T12:00:00Z'))).toEqual([
      'b009',
      'b008',
      'b007',
    ]);
  });

  it('full GFS over a year of daily backups: 7 daily, 4 weekly, 12 monthly, 2 yearly', () => {
    const items = series('2023-01-01T02:00:00Z', DAY, 365); // 2023-01-01 .. 2023-12-31
    const plan = planRetention(items, [{ daily: 7, weekly: 4, monthly: 12, yearly: 2 }]);
    const ids = new Set(plan.keep.map((k) => k.id));
    // Dailies: the last 7 days; weeklies: Sundays 12-31 (the newest of its week), 12-24, 12-17 (12-31 also daily).
    // Monthlies: the last day of each month; yearly: 12-31.
    expect(plan.keep.length).toBe(7 + 3 + 11);
    for (let i = 358; i <= 364; i++) expect(ids.has(`b${i}`)).toBe(true);
    expect(ids.has('b357')).toBe(true); // 2023-12-24, a Sunday
    expect(ids.has('b350')).toBe(true); // 2023-12-17
    expect(ids.has('b343')).toBe(true); // 2023-12-10
    expect(ids.has('b030')).toBe(true); // 2023-01-31
    expect(ids.has('b000')).toBe(false);
    expect(plan.keep.length + plan.expire.length).toBe(365);
  });

  it('never expires the newest backup when any rule is set', () => {
    const items = series('2024-01-01T00:00:00Z', 60_000, 50);
    for (const rules of [{ last: 1 }, { hourly: 1 }, { yearly: 1 }, { weekly: 1 }, { monthly: 1 }]) {
      expect(planRetention(items, [rules]).keep[0]?.id).toBe('b049');
    }
  });

  it('does not depend on input order; ties in time are broken by id', () => {
    const items: RetentionItem[] = [
      { id: 'a', time: '2024-01-01T00:00:00Z' },
      { id: 'c', time: '2024-01-01T00:00:00Z' },
      { id: 'b', time: '2024-01-01T00:00:00Z' },
    ];
    const forward = planRetention(items, [{ last: 1 }]);
    const backward = planRetention([...items].reverse(), [{ last: 1 }]);
    expect(forward).toEqual(backward);
    expect(forward.keep.map((k) => k.id)).toEqual(['c']);
  });

  it('takes epoch milliseconds as well as RFC 3339', () => {
    const items: RetentionItem[] = [
      { id: 'x', time: Date.parse('2024-02-01T00:00:00Z') },
      { id: 'y', time: '2024-02-02T00:00:00Z' },
    ];
    expect(planRetention(items, [{ last: 1 }]).expire).toEqual(['x']);
  });

  it('rejects bad input instead of guessing', () => {
    expect(() => planRetention([{ id: 'x', time: 'yesterday' }], [{ last: 1 }])).toThrow(/no valid time/);
    expect(() => planRetention([], [{ last: -1 }])).toThrow(/whole number/);
    expect(() => planRetention([], [{ daily: 1.5 }])).toThrow(/whole number/);
    expect(() => planRetention([{ id: 'x', time: 0 }], [{ within_days: 1 }])).toThrow(/current time/);
  });
});
