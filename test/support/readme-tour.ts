/**
 * Extracts the commands of a README's tour, in order, for test/readme-tour.test.ts.
 *
 * The tour is the part of the document from a `## A tour` heading to the next heading of level 1 or 2. In it:
 * - a ```console block holds commands as `$ command` lines; the lines after a command, up to the next `$ ` line or
 *   the end of the block, are what the command prints on stdout (none: it prints nothing);
 * - a ```sh (or bash, shell) block holds one command per line, its output not shown; blank lines and lines that
 *   start with `#` are not commands;
 * - in both, a line ending in `\` continues on the next line, and a trailing `# comment` is left to the shell;
 * - a block right after a `<!-- tour: skip: REASON -->` line is not run (REASON is required, and said by the test);
 * - any other fenced block with a language (json, text, ...) is not a command block; a fence without a language is
 *   refused, so that a block meant to run cannot be left out by accident.
 */

/** A line of output the README shows. */
export interface ShownLine {
  /** 1-based line number in the README. */
  line: number;
  text: string;
}

/** One command of the tour. */
export interface TourCommand {
  /** 1-based line number in the README of its (first) line. */
  line: number;
  /** The command as written, continuation lines joined. */
  command: string;
  /** What the README shows it prints (console blocks), or undefined when the README shows no output (sh blocks). */
  shown: ShownLine[] | undefined;
}

/** A block the tour does not run. */
export interface SkippedBlock {
  line: number;
  reason: string;
  commands: string[];
}

export interface Tour {
  commands: TourCommand[];
  skipped: SkippedBlock[];
}

const RUN_LANGUAGES = new Set(['console', 'sh', 'bash', 'shell']);
const SKIP_MARK = /^<!--\s*tour:\s*skip:\s*(.*?)\s*-->$/;
const FENCE = /^```\s*(\S*)\s*$/;

interface Block {
  /** Line number of the opening fence. */
  line: number;
  language: string;
  lines: ShownLine[];
  skipReason: string | undefined;
}

/** The fenced blocks between the tour's heading and the next heading of level 1 or 2. */
function tourBlocks(markdown: string, heading: string): Block[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start < 0) throw new Error(`the README has no "${heading}" heading`);
  const blocks: Block[] = [];
  let open: Block | undefined;
  let lastText = '';
  for (let i = start + 1; i < lines.length; i++) {
    const text = lines[i] ?? '';
    const fence = FENCE.exec(text);
    if (open !== undefined) {
      if (fence !== null && fence[1] === '') {
        blocks.push(open);
        open = undefined;
        lastText = '';
      } else {
        open.lines.push({ line: i + 1, text });
      }
      continue;
    }
    if (/^#{1,2} /.test(text)) break;
    if (fence !== null) {
      if (fence[1] === '') throw new Error(`README.md:${i + 1}: a fenced block in the tour needs a language`);
      const mark = SKIP_MARK.exec(lastText.trim());
      if (mark !== null && mark[1] === '') throw new Error(`README.md:${i}: a tour skip needs its reason`);
      open = { line: i + 1, language: fence[1] ?? '', lines: [], skipReason: mark?.[1] };
      continue;
    }
    if (text.trim() !== '') lastText = text;
  }
  if (open !== undefined) throw new Error(`README.md:${open.line}: block not closed`);
  return blocks;
}

/** Joins lines ending in `\` with the next one. */
function joinContinuations(lines: ShownLine[]): ShownLine[] {
  const out: ShownLine[] = [];
  let pending: ShownLine | undefined;
  for (const l of lines) {
    const text = pending === undefined ? l.text : `${pending.text}${l.text.trimStart()}`;
    const first = pending?.line ?? l.line;
    if (text.endsWith('\\')) {
      pending = { line: first, text: `${text.slice(0, -1).trimEnd()} ` };
      continue;
    }
    pending = undefined;
    out.push({ line: first, text });
  }
  if (pending !== undefined) throw new Error(`README.md:${pending.line}: a continued line has nothing after it`);
  return out;
}

function consoleCommands(block: Block): TourCommand[] {
  const commands: TourCommand[] = [];
  let current: TourCommand | undefined;
  let continuing = false;
  for (const l of block.lines) {
    if (continuing && current !== undefined) {
      current.command = `${current.command.slice(0, -1).trimEnd()} ${l.text.trim()}`;
      continuing = current.command.endsWith('\\');
      continue;
    }
    if (l.text.startsWith('$ ')) {
      current = { line: l.line, command: l.text.slice(2).trim(), shown: [] };
      continuing = current.command.endsWith('\\');
      commands.push(current);
      continue;
    }
    if (current === undefined) throw new Error(`README.md:${l.line}: output before any "$ command" line`);
    current.shown?.push(l);
  }
  if (continuing) throw new Error(`README.md:${block.line}: a continued line has nothing after it`);
  return commands;
}

function shCommands(block: Block): TourCommand[] {
  return joinContinuations(block.lines)
    .filter((l) => l.text.trim() !== '' && !l.text.trim().startsWith('#'))
    .map((l) => ({ line: l.line, command: l.text.trim(), shown: undefined }));
}

/** The tour's commands in order, and the blocks it skips. */
export function extractTour(markdown: string, heading = '## A tour'): Tour {
  const tour: Tour = { commands: [], skipped: [] };
  for (const block of tourBlocks(markdown, heading)) {
    if (!RUN_LANGUAGES.has(block.language)) continue;
    const commands = block.language === 'console' ? consoleCommands(block) : shCommands(block);
    if (block.skipReason !== undefined) {
      tour.skipped.push({ line: block.line, reason: block.skipReason, commands: commands.map((c) => c.command) });
    } else {
      tour.commands.push(...commands);
    }
  }
  return tour;
}
