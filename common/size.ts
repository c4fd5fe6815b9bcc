/** Sizes for people, in messages and tables: `10 GiB`, `1.5 MiB`, `512 B` (binary units, as the CLI takes them). */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** Formats bytes with binary units: `10 GiB`, `1.5 MiB`, `512 B`; exact values show no decimals. */
export function formatSize(bytes: number): string {
  let power = 0;
  while (power < UNITS.length - 1 && bytes >= 1024 ** (power + 1)) power += 1;
  const value = bytes / 1024 ** power;
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  return `${text} ${UNITS[power]}`;
}
