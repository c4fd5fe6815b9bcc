/**
 * Asking before something is destroyed: on a terminal, a y/N question on stderr read from stdin; with `--yes`, no
 * question; otherwise (stdin is not a terminal, so nobody can answer) a usage error saying to pass --yes.
 */
import { createInterface } from 'node:readline/promises';
import { InvalidArgumentError } from 'commander';

/** What to ask, and how to refuse. */
export interface ConfirmOptions {
  /** The question, without the `[y/N]`: `Delete volume pgdata and its 2 snapshots?`. */
  question: string;
  /** What would be lost, for the refusal without a terminal: `volume pgdata has 2 snapshots`. */
  what: string;
  /** `--yes` was given: go ahead without asking. */
  yes: boolean;
  /** Where the question is read from; default process.stdin. */
  input?: NodeJS.ReadStream;
  /** Where the question is written; default process.stderr. */
  prompt?: NodeJS.WriteStream;
}

/**
 * Resolves when the user agreed (or gave --yes); rejects with InvalidArgumentError (exit 2) when stdin is not a
 * terminal and --yes was not given, and with an Error (exit 1) when the answer is not yes.
 */
export async function confirm(options: ConfirmOptions): Promise<void> {
  if (options.yes) return;
  const input = options.input ?? process.stdin;
  if (input.isTTY !== true) {
    throw new InvalidArgumentError(`${options.what}; pass --yes to go ahead (stdin is not a terminal to ask on)`);
  }
  const rl = createInterface({ input, output: options.prompt ?? process.stderr });
  try {
    const answer = await rl.question(`${options.question} [y/N] `);
    if (!/^\s*y(es)?\s*$/i.test(answer)) throw new Error('nothing was deleted (the answer was not yes)');
  } finally {
    rl.close();
  }
}
