/**
 * pxctl `sched-policy`-style interval flags shared by `ferry policy` and `ferry cloudsnap schedules`:
 * `--periodic MINUTES,RETAIN`, `--daily HH:MM,RETAIN`, `--weekly DAY@HH:MM,RETAIN`, `--monthly DAY@HH:MM,RETAIN`
 * (each repeatable; times are UTC), and GFS flags `--keep-last|hourly|daily|weekly|monthly|yearly N`.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { type RetentionRules, type ScheduleInterval, WEEKDAYS } from '../../api/index.js';
import { parseWholeNumber } from '../format.js';

function split(text: string, what: string): [string, number] {
  const at = text.lastIndexOf(',');
  if (at <= 0)
    throw new InvalidArgumentError(`"${text}" is not ${what},RETAIN (e.g. ${what === 'MINUTES' ? '60' : '02:00'},7)`);
  const retain = Number(text.slice(at + 1));
  if (!Number.isInteger(retain) || retain < 1)
    throw new InvalidArgumentError(`"${text}": RETAIN must be a whole number >= 1`);
  return [text.slice(0, at), retain];
}

function hhmm(text: string, whole: string): { hour: number; minute: number } {
  const m = /^([0-9]{1,2}):([0-9]{2})$/.exec(text);
  const hour = Number(m?.[1]);
  const minute = Number(m?.[2]);
  if (m === null || hour > 23 || minute > 59) throw new InvalidArgumentError(`"${whole}": time must be HH:MM (UTC)`);
  return { hour, minute };
}

function weekday(text: string, whole: string): (typeof WEEKDAYS)[number] {
  const found = WEEKDAYS.find((d) => d.toLowerCase().startsWith(text.toLowerCase()) && text.length >= 3);
  if (found === undefined) throw new InvalidArgumentError(`"${whole}": day must be a weekday (mon, tuesday, ...)`);
  return found;
}

function collect(parse: (text: string) => ScheduleInterval) {
  return (text: string, previous: ScheduleInterval[] = []): ScheduleInterval[] => [...previous, parse(text)];
}

export const parsePeriodic = collect((text) => {
  const [minutes, retain] = split(text, 'MINUTES');
  if (!/^[0-9]+$/.test(minutes) || Number(minutes) < 1)
    throw new InvalidArgumentError(`"${text}": MINUTES must be >= 1`);
  return { periodic: { seconds: Number(minutes) * 60 }, retain };
});

export const parseDaily = collect((text) => {
  const [time, retain] = split(text, 'HH:MM');
  return { daily: hhmm(time, text), retain };
});

export const parseWeekly = collect((text) => {
  const [spec, retain] = split(text, 'DAY@HH:MM');
  const [day = '', time = ''] = spec.split('@');
  return { weekly: { day: weekday(day, text), ...hhmm(time, text) }, retain };
});

export const parseMonthly = collect((text) => {
  const [spec, retain] = split(text, 'DAY@HH:MM');
  const [day = '', time = ''] = spec.split('@');
  const n = Number(day);
  if (!Number.isInteger(n) || n < 1 || n > 31) throw new InvalidArgumentError(`"${text}": DAY must be 1-31`);
  return { monthly: { day: n, ...hhmm(time, text) }, retain };
});

/** Options the interval and GFS flags give. */
export interface ScheduleFlagValues {
  periodic?: ScheduleInterval[];
  daily?: ScheduleInterval[];
  weekly?: ScheduleInterval[];
  monthly?: ScheduleInterval[];
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

/** Adds the interval and GFS flags to a command. */
export function addScheduleFlags(command: Command): Command {
  return command
    .option('--periodic <minutes,retain>', 'every MINUTES, keep RETAIN of these (repeatable)', parsePeriodic)
    .option('--daily <hh:mm,retain>', 'every day at HH:MM UTC, keep RETAIN (repeatable)', parseDaily)
    .option('--weekly <day@hh:mm,retain>', 'every week on DAY at HH:MM UTC, keep RETAIN (repeatable)', parseWeekly)
    .option(
      '--monthly <day@hh:mm,retain>',
      'every month on DAY (1-31) at HH:MM UTC, keep RETAIN (repeatable)',
      parseMonthly,
    )
    .option('--keep-last <n>', 'GFS: also keep the newest N backups', parseWholeNumber)
    .option('--keep-hourly <n>', 'GFS: also keep the newest backup of each of the last N hours', parseWholeNumber)
    .option('--keep-daily <n>', 'GFS: also keep the newest backup of each of the last N days', parseWholeNumber)
    .option('--keep-weekly <n>', 'GFS: also keep the newest backup of each of the last N ISO weeks', parseWholeNumber)
    .option('--keep-monthly <n>', 'GFS: also keep the newest backup of each of the last N months', parseWholeNumber)
    .option('--keep-yearly <n>', 'GFS: also keep the newest backup of each of the last N years', parseWholeNumber);
}

/** The intervals the flags name, in flag order. */
export function intervalsOf(v: ScheduleFlagValues): ScheduleInterval[] {
  return [...(v.periodic ?? []), ...(v.daily ?? []), ...(v.weekly ?? []), ...(v.monthly ?? [])];
}

/** The GFS rules the flags name; undefined when none is given. */
export function retentionOf(v: ScheduleFlagValues): RetentionRules | undefined {
  const rules: RetentionRules = {
    ...(v.keepLast !== undefined && { last: v.keepLast }),
    ...(v.keepHourly !== undefined && { hourly: v.keepHourly }),
    ...(v.keepDaily !== undefined && { daily: v.keepDaily }),
    ...(v.keepWeekly !== undefined && { weekly: v.keepWeekly }),
    ...(v.keepMonthly !== undefined && { monthly: v.keepMonthly }),
    ...(v.keepYearly !== undefined && { yearly: v.keepYearly }),
  };
  return Object.keys(rules).length === 0 ? undefined : rules;
}

/** One interval for people: `every 60 min`, `daily 02:00`, `weekly Sun 04:00`, `monthly 1 00:00`; `keep N`. */
export function describeInterval(i: ScheduleInterval): string {
  return `${describeWhen(i)} keep ${i.retain}`;
}

/** When an interval runs: `daily 02:00`, `every 60 min`, `weekly sun 03:00`, `monthly 1 04:00`. */
export function describeWhen(i: ScheduleInterval): string {
  const t = (h: number, m: number): string => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
  if ('periodic' in i) return `every ${i.periodic.seconds / 60} min`;
  if ('daily' in i) return `daily ${t(i.daily.hour, i.daily.minute)}`;
  if ('weekly' in i) return `weekly ${i.weekly.day.slice(0, 3)} ${t(i.weekly.hour, i.weekly.minute)}`;
  return `monthly ${i.monthly.day} ${t(i.monthly.hour, i.monthly.minute)}`;
}

/** What an interval keeps: `7 daily`, `24 periodic`. */
export function describeKeep(i: ScheduleInterval): string {
  const kind = 'periodic' in i ? 'periodic' : 'daily' in i ? 'daily' : 'weekly' in i ? 'weekly' : 'monthly';
  return `${i.retain} ${kind}`;
}

/** GFS rules for people: `last 3, daily 7, weekly 4`, or `-`. */
export function describeRetention(r: RetentionRules | undefined): string {
  if (r === undefined) return '-';
  const parts = Object.entries(r)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([k, n]) => `${k} ${n}`);
  return parts.length === 0 ? '-' : parts.join(', ');
}
