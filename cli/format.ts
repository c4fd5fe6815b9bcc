/**
 * Text for people: sizes ("10 GiB"), tables, and parsing of the sizes, labels and addresses users type.
 * Parsers throw commander's InvalidArgumentError so a bad value is a usage error (exit 2).
 */
import { InvalidArgumentError } from 'commander';
import { formatSize } from '../common/index.js';
import { MAX_VOLUME_SIZE, SIZE_ALIGNMENT } from '../node/index.js';

const UNIT_POWERS: Readonly<Record<string, number>> = { '': 0, b: 0, k: 1, m: 2, g: 3, t: 4, p: 5 };

export { formatSize };

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
  if (bytes > Number.MAX_SAFE_INTEGER) {
    throw new InvalidArgumentError(`"${text}" is above the largest size allowed, ${formatSize(MAX_VOLUME_SIZE)}`);
  }
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError(`"${text}" is not a whole number of bytes`);
  return bytes;
}

/** Parses a volume size (`--size`): a size as parseSize reads it, a whole number of 4 KiB, at most 64 TiB. */
export function parseVolumeSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes > MAX_VOLUME_SIZE) {
    throw new InvalidArgumentError(`"${text}" is above the largest size allowed, ${formatSize(MAX_VOLUME_SIZE)}`);
  }
  if (bytes === 0) throw new InvalidArgumentError(`"${text}" is empty; give a size of at least 4 KiB`);
  if (bytes % SIZE_ALIGNMENT !== 0) {
    throw new InvalidArgumentError(`"${text}" is not a whole number of ${formatSize(SIZE_ALIGNMENT)} blocks`);
  }
  return bytes;
}

/** Parses `key=value` into a label, adding it to `previous` (for repeatable `--label`). */
export function parseLabel(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = text.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`"${text}" is not a label; use key=value`);
  return { ...previous, [text.slice(0, at)]: text.slice(at + 1) };
}

/** Parses a comma-separated list (`--nodes a,b`): names without spaces, none empty, none twice. */
export function parseList(text: string): string[] {
  const items = text.split(',').map((item) => item.trim());
  if (items.some((item) => item === '' || /\s/.test(item))) {
    throw new InvalidArgumentError(`"${text}" is not a comma-separated list of names (e.g. a,b)`);
  }
  const twice = items.find((item, i) => items.indexOf(item) !== i);
  if (twice !== undefined) throw new InvalidArgumentError(`"${text}" names ${twice} twice`);
  return items;
}

/** Parses a whole number (for `--repl`). */
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
