/**
 * One row of the failover bench: a figure against its goal, and a verdict that never flatters: `met` or `missed`
 * when the figure was measured, `reported` for figures without a numeric goal, `failed: <why>` when the behaviour
 * the figure needs did not happen (no figure), `not measured: <why>` when the bench could not measure it, `not run`.
 */
import type { Row } from './report.js';

/** A measured (or not) figure. */
export interface FigureRow {
  /** Short name used by `--only`. */
  key: string;
  figure: string;
  /** The figure as text (with its unit), or `-`. */
  value: string;
  goal: string;
  verdict: string;
  /** What exactly was measured, and how. */
  detail: string;
  /** The numbers behind the value, for the JSON. */
  data?: Record<string, unknown>;
}

/** The `p`-th percentile (0..100) of `values`, nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

/** `met` when `value <= goal`, else `missed`. */
export function atMost(value: number, goal: number): string {
  return value <= goal ? 'met' : 'missed';
}

/** Seconds with 2 decimals. */
export function secs(ns: number): string {
  return `${(ns / 1e9).toFixed(2)} s`;
}

/** Milliseconds, whole. */
export function ms(ns: number): string {
  return `${Math.round(ns / 1e6)} ms`;
}

/** The message of an unknown error, on one line. */
export function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}

/** Longest verdict shown in the table (the notes under it and the JSON have it whole). */
const VERDICT_WIDTH = 80;

/** The table's row of a figure (the JSON keeps the whole record). */
export function tableRow(r: FigureRow): Row {
  const verdict = r.verdict.length > VERDICT_WIDTH ? `${r.verdict.slice(0, VERDICT_WIDTH - 3)}...` : r.verdict;
  return { figure: r.figure, value: r.value, goal: r.goal, verdict };
}

/** The notes under the table: each row's whole verdict and how it was measured. */
export function notes(rows: readonly FigureRow[]): string {
  return rows.map((r) => `- ${r.figure}\n    verdict: ${r.verdict}\n    how: ${r.detail || '-'}\n`).join('');
}
