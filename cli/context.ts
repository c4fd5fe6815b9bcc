/** What every command shares: the global options, the API client, and how results are printed. */
import type { Command } from 'commander';
import { DEFAULT_API_URL, FerryClient } from './client.js';
import { cliToken } from './commands/auth-token.js';

/** Options the root command defines for every command. */
export interface GlobalOptions {
  /** API base URL (`--api`); default env FERRY_API_URL, then http://127.0.0.1:9001. */
  api?: string;
  /** Print the API's JSON instead of text for people (`--json`). */
  json?: boolean;
  /** Bearer token (`--token`); default env FERRY_TOKEN, then one minted from a readable admin secret. */
  token?: string;
}

/** The global options as seen from `command`. */
export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

/** A client for the API the user pointed at. */
export function clientFor(command: Command): FerryClient {
  const options = globalOptions(command);
  return new FerryClient(options.api ?? process.env.FERRY_API_URL ?? DEFAULT_API_URL, {
    token: () => cliToken(options.token),
  });
}

/** Prints `json` (pretty, for `--json`) or the text `human()` builds. */
export function output(command: Command, json: unknown, human: () => string): void {
  process.stdout.write(globalOptions(command).json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
}
