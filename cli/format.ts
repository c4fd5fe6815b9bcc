/**
 * Text for people: sizes ("10 GiB"), tables, and parsing of the sizes, labels and addresses users type.
 * Parsers throw commander's InvalidArgumentError so a bad value is a usage error (exit 2).
 */
import { InvalidArgumentError } from 'commander';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;
const UNIT_POWERS: Readonly<Record<string, number>> = { '': 0, b: 0, k: 1, m: 2, g: 3, t: 4, p: 5 };

/** Formats bytes with binary units: `10 GiB`, `1.5 MiB`, `512 B`; exact values show no decimals. */
export function formatSize(bytes: number): string {
  let power = 0;
  while (power < UNITS.length - 1 && bytes >= 1024 ** (power + 1)) power += 1;
  const value = bytes / 1024 ** power;
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  return `${text} ${UNITS[power]}`;
}

/**
 * Parses a size: plain bytes (`4096`, `4096B`) or a number with a binary unit K, M, G, T, P, optionally followed by
 * `i`, `B` or `iB` (`10G`, `10Gi`, `10GiB`, `10GB`, `1T`, `1.5g` all use powers of 1024, as pxctl does).
 */
export function parseSize(text: string): number {
  const match = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(ib|i|b)?\s*$/i.exec(text);
  const unit = match?.[2]?.toLowerCase() ?? '';
  const suffix = match?.[3]?.toLowerCase() ?? '';
  const power = UNIT_POWERS[unit];
  if (match === null || power === undefined || (unit === '' && suffix !== '' && suffix !== 'b')) {
    throw new InvalidArgumentError(`"${text}" is not a size; use bytes or a unit, e.g. 10G, 10GiB, 1T`);
  }
  const bytes = Number(match[1]) * 1024 ** power;
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError(`"${text}" is not a whole number of bytes`);
  return bytes;
}

/** Parses `key=value` into a label, adding it to `previous` (for repeatable `--label`). */
export function parseLabel(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = text.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`"${text}" is not a label; use key=value`);
  return { ...previous, [text.slice(0, at)]: text.slice(at + 1) };
}

/** Parses a whole number (for `--ha-level`). */
export function parseWholeNumber(text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new InvalidArgumentError(`"${text}" is not a whole number`);
  return Number(text);
}

/** A listen address. */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses `HOST:PORT` or `[IPV6]:PORT`; port 0 asks the system for a free one. */
export function parseHostPort(text: string): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (match === null || host === undefined || port > 65535) {
    throw new InvalidArgumentError(`"${text}" is not HOST:PORT (e.g. 127.0.0.1:9001 or [::1]:9001)`);
  }
  return { host, port };
}

/** Formats a host and port for a URL (brackets around IPv6). */
export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Renders rows under a header, columns padded to their widest cell and separated by two spaces. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Formats labels as `k=v,k2=v2` (or `-` when there are none). */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).map(([key, value]) => `${key}=${value}`);
  return pairs.length === 0 ? '-' : pairs.join(',');
}
