/**
 * CloudSnap keeps its functions short (issue: "the largest function in cloudsnap/ is under 100 lines"): a backup or
 * restore written as one long closure is what the stages in cloudsnap/backup/ replaced. Measured with the
 * TypeScript compiler's own parser over every non-test source file of the folder.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const LIMIT = 100;

/** Every function-like node with a body in `file`, with its length in lines. */
function functionLengths(path: string, text: string): { where: string; lines: number }[] {
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const found: { where: string; lines: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      found.push({ where: `${path}:${first + 1}`, lines: last - first + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

async function sourcesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name));
}

describe('function size', () => {
  it(`finds a long function (the measure works): one of ${LIMIT + 20} lines`, () => {
    const body = Array.from({ length: LIMIT + 18 }, (_, i) => `  const v${i} = ${i};`).join('\n');
    const [fn] = functionLengths('probe.ts', `function long(): void {\n${body}\n}\n`);
    expect(fn?.lines).toBe(LIMIT + 20);
  });

  it(`no function in cloudsnap/ is ${LIMIT} lines or longer`, async () => {
    const long: string[] = [];
    for (const path of await sourcesUnder('cloudsnap')) {
      for (const fn of functionLengths(path, await readFile(path, 'utf8'))) {
        if (fn.lines >= LIMIT) long.push(`${fn.where} (${fn.lines} lines)`);
      }
    }
    expect(long).toEqual([]);
  });
});
