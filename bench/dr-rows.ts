/**
 * One row of the DR bench: a figure, Ferry's value, the peer's (nbdcopy) value where there is one, the goal, and a
 * verdict that never flatters: `met` / `missed` (with the ratio where the goal is one), `reported` for a figure
 * without a goal, `failed: <why>` when the behaviour the figure needs did not happen, `not built: <why>`.
 */
import type { Row } from './report.js';

export interface DrRow {
  /** Short name used by `--only` (copy, cutover, dr). */
  key: string;
  figure: string;
  /** Ferry's value as text (with its unit), or `-`. */
  ferry: string;
  /** The peer's value as text, or `-`. */
  peer: string;
  goal: string;
  verdict: string;
  /** The conditions it was measured under. */
  conditions: string;
  /** The numbers behind the values, for the JSON. */
  data?: Record<string, unknown>;
}

/** The median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The message of an unknown error, on one line. */
export function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').trim().slice(0, 400);
}

export const MiB = 1024 * 1024;

/** `1.23 s`. */
export function seconds(s: number): string {
  return `${s.toFixed(2)} s`;
}

/** `123.4 MiB/s` of `bytes` moved in `s` seconds. */
export function rate(bytes: number, s: number): string {
  return `${(bytes / MiB / s).toFixed(1)} MiB/s`;
}

/** `614 MiB`. */
export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(bytes >= 100 * MiB ? 0 : 1)} MiB`;
}

/** Longest cells shown in the table (the notes under it and the JSON have them whole). */
const VERDICT_WIDTH = 60;
const CONDITIONS_WIDTH = 70;

function cut(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 3)}...` : text;
}

/** The table's row of a figure (the JSON keeps the whole record). */
export function tableRow(r: DrRow): Row {
  return {
    figure: r.figure,
    ferry: r.ferry,
    peer: r.peer,
    goal: r.goal,
    verdict: cut(r.verdict, VERDICT_WIDTH),
    conditions: cut(r.conditions, CONDITIONS_WIDTH),
  };
}

/** The notes under the table: each row's whole verdict and conditions. */
export function notes(rows: readonly DrRow[]): string {
  return rows.map((r) => `- ${r.figure}\n    verdict: ${r.verdict}\n    conditions: ${r.conditions || '-'}\n`).join('');
}
