import { describe, expect, it } from 'vitest';
import { dueIntervals, intervalKey, nextOccurrence, nextRun, previousOccurrence, rewoundFires } from './next-run.js';
import type { ScheduleInterval } from './types.js';

const t = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();
const anchor = t('2024-01-01T00:00:00Z');

const daily: ScheduleInterval = { daily: { hour: 2, minute: 30 }, retain: 7 };
const weekly: ScheduleInterval = { weekly: { day: 'Sunday', hour: 4, minute: 0 }, retain: 4 };
const monthly31: ScheduleInterval = { monthly: { day: 31, hour: 0, minute: 0 }, retain: 12 };
const hourly: ScheduleInterval = { periodic: { seconds: 3600 }, retain: 24 };

describe('occurrences in UTC', () => {
  it('daily: today at hh:mm once passed, else yesterday; next is the following one', () => {
    expect(iso(previousOccurrence(daily, t('2024-03-10T02:30:00Z'), anchor))).toBe('2024-03-10T02:30:00.000Z');
    expect(iso(previousOccurrence(daily, t('2024-03-10T02:29:59Z'), anchor))).toBe('2024-03-09T02:30:00.000Z');
    expect(iso(nextOccurrence(daily, t('2024-03-10T02:30:00Z'), anchor))).toBe('2024-03-11T02:30:00.000Z');
    expect(iso(nextOccurrence(daily, t('2024-03-10T01:00:00Z'), anchor))).toBe('2024-03-10T02:30:00.000Z');
  });

  it('weekly: the named weekday', () => {
    // 2024-03-13 is a Wednesday.
    expect(iso(previousOccurrence(weekly, t('2024-03-13T12:00:00Z'), anchor))).toBe('2024-03-10T04:00:00.000Z');
    expect(iso(nextOccurrence(weekly, t('2024-03-13T12:00:00Z'), anchor))).toBe('2024-03-17T04:00:00.000Z');
    expect(iso(previousOccurrence(weekly, t('2024-03-10T03:59:00Z'), anchor))).toBe('2024-03-03T04:00:00.000Z');
  });

  it('monthly: a day past the end of a short month is its last day', () => {
    expect(iso(previousOccurrence(monthly31, t('2024-03-15T00:00:00Z'), anchor))).toBe('2024-02-29T00:00:00.000Z');
    expect(iso(nextOccurrence(monthly31, t('2024-03-15T00:00:00Z'), anchor))).toBe('2024-03-31T00:00:00.000Z');
    expect(iso(nextOccurrence(monthly31, t('2024-03-31T00:00:00Z'), anchor))).toBe('2024-04-30T00:00:00.000Z');
    expect(iso(nextOccurrence(monthly31, t('2024-12-31T00:00:00Z'), anchor))).toBe('2025-01-31T00:00:00.000Z');
  });

  it('periodic: counted from the anchor, not from the hour', () => {
    const a = t('2024-01-01T00:10:00Z');
    expect(iso(previousOccurrence(hourly, t('2024-01-01T05:09:59Z'), a))).toBe('2024-01-01T04:10:00.000Z');
    expect(iso(nextOccurrence(hourly, t('2024-01-01T05:10:00Z'), a))).toBe('2024-01-01T06:10:00.000Z');
  });

  it('names intervals stably', () => {
    expect([daily, weekly, monthly31, hourly].map(intervalKey)).toEqual([
      'daily-0230',
      'weekly-Sun-0400',
      'monthly-31-0000',
      'periodic-3600',
    ]);
  });

  it('nextRun is the earliest of the intervals', () => {
    expect(iso(nextRun([daily, weekly], anchor, t('2024-03-10T03:00:00Z')) ?? 0)).toBe('2024-03-10T04:00:00.000Z');
    expect(nextRun([], anchor, 0)).toBeUndefined();
  });
});

describe('dueIntervals', () => {
  const created = t('2024-03-10T10:00:00Z');

  it('nothing is due at creation; an interval is due once its first occurrence has passed', () => {
    expect(dueIntervals([daily, hourly], {}, created, created)).toEqual([]);
    expect(dueIntervals([daily, hourly], {}, created, created + 3_600_000)).toEqual([hourly]);
    expect(dueIntervals([daily], {}, created, t('2024-03-11T02:30:00Z'))).toEqual([daily]);
  });

  it('many missed occurrences make one due interval, not many', () => {
    const fired = { 'periodic-3600': iso(created + 3_600_000) };
    expect(dueIntervals([hourly], fired, created, created + 50 * 3_600_000)).toEqual([hourly]);
  });

  it('after firing, the interval is not due until its next occurrence', () => {
    const now = t('2024-03-11T02:30:05Z');
    const fired = { 'daily-0230': iso(now) };
    expect(dueIntervals([daily], fired, created, now + 60_000)).toEqual([]);
    expect(dueIntervals([daily], fired, created, t('2024-03-12T02:30:00Z'))).toEqual([daily]);
  });

  it('a clock jumped back neither fires at once nor stalls: rewound, it fires at the next occurrence', () => {
    const fired = { 'daily-0230': '2024-03-20T02:30:00.000Z' }; // recorded before the clock went back ten days
    const now = t('2024-03-10T23:00:00Z');
    expect(dueIntervals([daily], fired, created, now)).toEqual([]);
    const rewound = rewoundFires([daily], fired, created, now);
    expect(rewound).toEqual({ 'daily-0230': '2024-03-10T02:30:00.000Z' });
    expect(dueIntervals([daily], rewound ?? {}, created, now)).toEqual([]);
    expect(dueIntervals([daily], rewound ?? {}, created, t('2024-03-11T02:30:00Z'))).toEqual([daily]);
    expect(rewoundFires([daily], rewound ?? {}, created, now)).toBeUndefined();
  });

  it('a schedule created "in the future" (clock went back after its creation) is rewound too', () => {
    const now = created - 5 * 3_600_000;
    expect(dueIntervals([hourly], {}, created, now)).toEqual([]);
    const rewound = rewoundFires([hourly], {}, created, now) ?? {};
    expect(rewound['periodic-3600']).toBe(iso(now));
    expect(dueIntervals([hourly], rewound, created, now + 3_600_000)).toEqual([hourly]);
  });
});
