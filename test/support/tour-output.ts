/**
 * Compares what a tour command printed with what the README shows, for test/readme-tour.test.ts.
 *
 * Only these may differ, each recognised by its exact shape (anything else must match character for character,
 * trailing spaces aside):
 * - ids the node makes up: volume and snapshot ids (16 hex digits), UUIDs (credentials, tasks, schedules) and backup
 *   ids (`20261128T101500.123Z-1a2b3c4d`). The README's id is a name for the id the node printed in the same place
 *   (the n-th id of a kind in the README's output pairs with the n-th of that kind in the actual output). Once
 *   paired, it must stand for that same id wherever it appears again (output or command), and no other README id
 *   may stand for it;
 * - timestamps (`2026-11-28T10:15:00.512Z`): any timestamp matches any other;
 * - durations of jobs (`in 0.4 s`): any number of seconds with one decimal;
 * - with `looseColumns` (the test sets it for output that held a temp path or port it mapped back to the README's,
 *   whose table columns are padded to the test's longer strings), runs of two or more spaces match each other.
 * Ports and temp paths themselves are not handled here: the test maps them (see HostMapping) before comparing.
 */

type IdKind = 'backup' | 'uuid' | 'volume';

const TOKENS =
  /(?<backup>\b\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\b)|(?<uuid>\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)|(?<time>\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\b)|(?<volume>\b[0-9a-f]{16}\b)|(?<duration>\bin \d+\.\d s\b)/g;

interface Token {
  kind: IdKind | 'time' | 'duration';
  text: string;
}

function kindOf(groups: Record<string, string | undefined>): Token['kind'] {
  for (const kind of ['backup', 'uuid', 'time', 'volume', 'duration'] as const) {
    if (groups[kind] !== undefined) return kind;
  }
  throw new Error('unreachable: a token matched no group');
}

/** Replaces each token of `text` with what `replace` returns for it. */
function mapTokens(text: string, replace: (token: Token) => string): string {
  return text.replace(TOKENS, (...args: unknown[]) => {
    const groups = args.at(-1) as Record<string, string | undefined>;
    return replace({ kind: kindOf(groups), text: String(args[0]) });
  });
}

function idTokens(text: string, kind: IdKind): string[] {
  const found: string[] = [];
  mapTokens(text, (t) => {
    if (t.kind === kind) found.push(t.text);
    return t.text;
  });
  return found;
}

/** Which id the node printed for each id the README shows. */
export class IdPairs {
  private readonly toActualIds = new Map<string, string>();
  private readonly toReadmeIds = new Map<string, string>();

  /** Pairs the ids of `shown` (README output) with those of `actual`, kind by kind, in order. */
  pair(shown: string, actual: string): void {
    for (const kind of ['backup', 'uuid', 'volume'] as const) {
      const ours = idTokens(shown, kind);
      const theirs = idTokens(actual, kind);
      for (let i = 0; i < Math.min(ours.length, theirs.length); i++) {
        const readmeId = ours[i]!;
        const actualId = theirs[i]!;
        if (this.toActualIds.has(readmeId) || this.toReadmeIds.has(actualId)) continue;
        this.toActualIds.set(readmeId, actualId);
        this.toReadmeIds.set(actualId, readmeId);
      }
    }
  }

  /** A README command with its ids replaced by the node's; `unpaired` lists ids no earlier output showed. */
  command(text: string): { command: string; unpaired: string[] } {
    const unpaired: string[] = [];
    const command = mapTokens(text, (t) => {
      if (t.kind === 'time' || t.kind === 'duration') return t.text;
      const actual = this.toActualIds.get(t.text);
      if (actual === undefined) unpaired.push(t.text);
      return actual ?? t.text;
    });
    return { command, unpaired };
  }

  /** Actual output with the node's ids written as the README's, for showing a difference. */
  readmeIds(text: string): string {
    return mapTokens(text, (t) =>
      t.kind === 'time' || t.kind === 'duration' ? t.text : (this.toReadmeIds.get(t.text) ?? t.text),
    );
  }

  /** The form two lines are compared in: README ids as they are, actual ids as their README ids. */
  canonical(text: string, side: 'readme' | 'actual'): string {
    return mapTokens(text, (t) => {
      if (t.kind === 'time') return '<timestamp>';
      if (t.kind === 'duration') return 'in <seconds> s';
      if (side === 'readme') return `<${t.kind} ${t.text}>`;
      const readmeId = this.toReadmeIds.get(t.text);
      return readmeId === undefined ? `<${t.kind} unpaired ${t.text}>` : `<${t.kind} ${readmeId}>`;
    }).trimEnd();
  }
}

/** The README's spelling of host-specific strings (a port, a path) and what the test runs with instead. */
export interface HostMapping {
  readme: string;
  actual: string;
}

/** Rewrites `text` from one side of the mappings to the other (longest strings first). */
export function mapHost(text: string, mappings: HostMapping[], to: 'actual' | 'readme'): string {
  const pairs = mappings
    .map((m): [string, string] => (to === 'actual' ? [m.readme, m.actual] : [m.actual, m.readme]))
    .sort((a, b) => b[0].length - a[0].length);
  let out = text;
  for (const [from, into] of pairs) out = out.split(from).join(into);
  return out;
}

/** Longest common subsequence of two lists of lines, as pairs of indices. */
function commonLines(a: string[], b: string[]): Array<[number, number]> {
  const table = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      table[i]![j] = a[i] === b[j] ? table[i + 1]![j + 1]! + 1 : Math.max(table[i + 1]![j]!, table[i]![j + 1]!);
    }
  }
  const pairs: Array<[number, number]> = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      pairs.push([i, j]);
      i++;
      j++;
    } else if (table[i + 1]![j]! >= table[i]![j + 1]!) i++;
    else j++;
  }
  return pairs;
}

/** Splits printed text into lines, without the newline that ends the last one. */
export function outputLines(text: string): string[] {
  if (text === '') return [];
  return text.replace(/\n$/, '').split('\n');
}

/**
 * Compares the README's lines with the actual ones (already mapped to the README's host strings). Returns undefined
 * when they match, else a diff: `  ` both, `- README.md:N` only the README, `+ ` only the actual output.
 */
export function compareOutput(
  shown: Array<{ line: number; text: string }>,
  actual: string[],
  ids: IdPairs,
  options: { looseColumns?: boolean } = {},
): string | undefined {
  const columns = (text: string) => ((options.looseColumns ?? false) ? text.replace(/ {2,}/g, '  ') : text);
  const ours = shown.map((s) => columns(ids.canonical(s.text, 'readme')));
  const theirs = actual.map((a) => columns(ids.canonical(a, 'actual')));
  if (ours.length === theirs.length && ours.every((l, i) => l === theirs[i])) return undefined;
  const out: string[] = [];
  let i = 0;
  let j = 0;
  const width = String(Math.max(100, ...shown.map((s) => s.line))).length;
  const readmeLine = (k: number) => `README.md:${String(shown[k]!.line).padStart(width)} | ${shown[k]!.text}`;
  const actualLine = (k: number) => `${'actual'.padEnd(10 + width)} | ${ids.readmeIds(actual[k]!)}`;
  for (const [a, b] of [...commonLines(ours, theirs), [ours.length, theirs.length] as [number, number]]) {
    for (; i < a; i++) out.push(`- ${readmeLine(i)}`);
    for (; j < b; j++) out.push(`+ ${actualLine(j)}`);
    if (a < ours.length) out.push(`  ${readmeLine(a)}`);
    i = a + 1;
    j = b + 1;
  }
  return out.join('\n');
}
