/**
 * JSON values as YAML 1.2 block text for `-o yaml`: mappings and sequences in block style, empty ones as `{}` and
 * `[]`, strings plain when YAML would read them back as the same string, else double-quoted (a JSON string literal is
 * a valid YAML double-quoted scalar).
 */

/** Plain scalars YAML 1.1 or 1.2 would read as something other than a string. */
const RESERVED =
  /^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;
const NUMBER_LIKE = /^[-+]?(?:\.?[0-9]|0[box]|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)/;
/** Characters that may not start a plain scalar, or that make part of one mean something else. */
const UNSAFE_START = /^[-?:,[\]{}#&*!|>'"%@`\s]/;
const UNSAFE_INSIDE = /: |:$| #|\p{Cc}|[\u2028\u2029]|\s$/u;

function scalarString(text: string): string {
  const plain =
    text !== '' &&
    !RESERVED.test(text) &&
    !NUMBER_LIKE.test(text) &&
    !UNSAFE_START.test(text) &&
    !UNSAFE_INSIDE.test(text);
  return plain ? text : JSON.stringify(text);
}

/** `1e+21` as `1.0e+21`: YAML 1.1 parsers read an exponent without a dot as a string. */
function numberText(n: number): string {
  const text = String(n);
  return text.includes('e') && !text.includes('.') ? text.replace('e', '.0e') : text;
}

function scalar(value: unknown): string | undefined {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return scalarString(value);
  if (typeof value === 'number') return Number.isFinite(value) ? numberText(value) : 'null';
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.length === 0 ? '[]' : undefined;
  if (typeof value === 'object') return Object.keys(value).length === 0 ? '{}' : undefined;
  return JSON.stringify(String(value));
}

function lines(value: unknown, indent: string): string[] {
  const out: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      const inline = scalar(item);
      if (inline !== undefined) {
        out.push(`${indent}- ${inline}`);
        continue;
      }
      const [first = '', ...rest] = lines(item, `${indent}  `);
      out.push(`${indent}- ${first.slice(indent.length + 2)}`, ...rest);
    }
    return out;
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (item === undefined) continue;
    const inline = scalar(item);
    const name = scalarString(key);
    if (inline !== undefined) out.push(`${indent}${name}: ${inline}`);
    else out.push(`${indent}${name}:`, ...lines(item, Array.isArray(item) ? indent : `${indent}  `));
  }
  return out;
}

/** `value` (what JSON.stringify accepts) as a YAML document, ending with a newline. */
export function toYaml(value: unknown): string {
  const normalized: unknown = JSON.parse(JSON.stringify(value ?? null));
  const inline = scalar(normalized);
  return `${inline ?? lines(normalized, '').join('\n')}\n`;
}
