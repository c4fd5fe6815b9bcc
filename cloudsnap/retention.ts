/**
 * Grandfather-father-son retention, as a pure selection: given backups and rules, which to keep (and why) and which
 * to expire. Nothing here deletes anything; the caller expires through the repository's safe delete path.
 *
 * Rules (each optional; 0 or absent means "this rule keeps nothing"):
 * - `last`: the newest N backups;
 * - `hourly`, `daily`, `weekly`, `monthly`, `yearly`: the newest backup of each of the N newest calendar buckets
 *   (UTC hours, days, ISO weeks starting Monday, months, years) that hold a backup;
 * - `within_days`: every backup taken less than N days before `now`.
 * A backup is kept when any rule keeps it. A rule set with no rule at all keeps everything (never "expire all").
 */

/** One backup as retention sees it. */
export interface RetentionItem {
  id: string;
  /** When the backup was taken (RFC 3339, or epoch milliseconds). */
  time: string | number;
}

/** GFS rules; every count is a whole number >= 0. */
export interface RetentionRules {
  /** Keep the newest N backups. */
  last?: number;
  /** Keep the newest backup of each of the last N hours that have one. */
  hourly?: number;
  /** Keep the newest backup of each of the last N days that have one. */
  daily?: number;
  /** Keep the newest backup of each of the last N ISO weeks that have one. */
  weekly?: number;
  /** Keep the newest backup of each of the last N months that have one. */
  monthly?: number;
  /** Keep the newest backup of each of the last N years that have one. */
  yearly?: number;
  /** Keep every backup younger than N days (needs `now`). */
  within_days?: number;
}

/** Why a backup is kept: the rule name (`last`, `daily`, ...) and, for bucket rules, the bucket (`2024-05-01`). */
export type KeepReason = string;

export interface RetentionPlan {
  /** Ids kept, newest first, each with every reason that kept it. */
  keep: Array<{ id: string; reasons: KeepReason[] }>;
  /** Ids to expire, newest first. */
  expire: string[];
}

const BUCKET_RULES = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type BucketRule = (typeof BUCKET_RULES)[number];
const DAY_MS = 86_400_000;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** ISO 8601 week of a UTC time: `YYYY-Www` (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeek(ms: number): string {
  const d = new Date(ms);
  const day = (d.getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  const thursday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - day + 3);
  const year = new Date(thursday).getUTCFullYear();
  const week = 1 + Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * DAY_MS));
  return `${year}-W${pad(week)}`;
}

/** The calendar bucket (UTC) of a time for a bucket rule. */
export function bucketOf(rule: BucketRule, ms: number): string {
  const d = new Date(ms);
  const y = pad(d.getUTCFullYear(), 4);
  const m = pad(d.getUTCMonth() + 1);
  const day = pad(d.getUTCDate());
  switch (rule) {
    case 'hourly':
      return `${y}-${m}-${day}T${pad(d.getUTCHours())}`;
    case 'daily':
      return `${y}-${m}-${day}`;
    case 'weekly':
      return isoWeek(ms);
    case 'monthly':
      return `${y}-${m}`;
    case 'yearly':
      return y;
  }
}

function timeOf(item: RetentionItem): number {
  const ms = typeof item.time === 'number' ? item.time : Date.parse(item.time);
  if (!Number.isFinite(ms)) throw new RangeError(`backup ${item.id} has no valid time: ${String(item.time)}`);
  return ms;
}

function count(n: number | undefined, name: string): number {
  const v = n ?? 0;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a whole number >= 0`);
  return v;
}

/** Whether the rules keep anything at all (an empty rule set means "no retention": keep every backup). */
export function hasRules(rules: RetentionRules): boolean {
  return (['last', 'within_days', ...BUCKET_RULES] as const).some((r) => count(rules[r], r) > 0);
}

/**
 * Keep sets of several rule sets, united: a backup is kept when any rule of any set keeps it. `now` (epoch ms) is
 * needed by `within_days` only. Ties in time are broken by id, so the result does not depend on input order.
 */
export function planRetention(
  items: readonly RetentionItem[],
  ruleSets: readonly RetentionRules[],
  now?: number,
): RetentionPlan {
  const sorted = items
    .map((item) => ({ id: item.id, ms: timeOf(item) }))
    .sort((a, b) => b.ms - a.ms || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const reasons = new Map<string, KeepReason[]>();
  const keep = (id: string, reason: KeepReason): void => {
    const list = reasons.get(id);
    if (list === undefined) reasons.set(id, [reason]);
    else if (!list.includes(reason)) list.push(reason);
  };
  const active = ruleSets.filter(hasRules);
  if (active.length === 0) {
    for (const b of sorted) keep(b.id, 'no rules');
  }
  for (const rules of active) {
    const last = count(rules.last, 'last');
    for (const b of sorted.slice(0, last)) keep(b.id, 'last');
    const within = count(rules.within_days, 'within_days');
    if (within > 0) {
      if (now === undefined) throw new RangeError('within_days needs the current time');
      for (const b of sorted) if (now - b.ms < within * DAY_MS) keep(b.id, `within ${within}d`);
    }
    for (const rule of BUCKET_RULES) {
      const n = count(rules[rule], rule);
      let seen = 0;
      let previous: string | undefined;
      for (const b of sorted) {
        if (seen >= n) break;
        const bucket = bucketOf(rule, b.ms);
        if (bucket === previous) continue;
        previous = bucket;
        seen++;
        keep(b.id, `${rule} ${bucket}`);
      }
    }
  }
  return {
    keep: sorted.filter((b) => reasons.has(b.id)).map((b) => ({ id: b.id, reasons: reasons.get(b.id) ?? [] })),
    expire: sorted.filter((b) => !reasons.has(b.id)).map((b) => b.id),
  };
}
