/** What every command shares: the global options, the API client, and how results are printed. */
import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_API_URL, FerryClient } from './client.js';
import { cliToken } from './commands/auth-token.js';
import { toYaml } from './yaml.js';

/** The output formats of `-o`. */
export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Options the root command defines for every command. */
export interface GlobalOptions {
  /** API base URL (`--api`); default env FERRY_API_URL, then http://127.0.0.1:9001. */
  api?: string;
  /**
   * Machine-readable output: true for `--json`, `-o json` and `-o yaml` (commands that print progress or prompts
   * keep quiet when it is set).
   */
  json?: boolean;
  /** `-o table|wide|json|yaml`; `--json` is `-o json`. */
  output?: OutputFormat;
  /** Bearer token (`--token`); default env FERRY_TOKEN, then one minted from a readable admin secret. */
  token?: string;
  /** Data directory (`--data-dir`): where `node start` keeps its data and whose admin secret signs CLI tokens. */
  dataDir?: string;
}

/** The global options as seen from `command`; `json` is set for every machine-readable format. */
export function globalOptions(command: Command): GlobalOptions {
  const options = command.optsWithGlobals<GlobalOptions>();
  const format = outputFormat(options);
  return { ...options, output: format, json: format === 'json' || format === 'yaml' };
}

function outputFormat(options: GlobalOptions): OutputFormat {
  if (options.json === true) {
    if (options.output !== undefined && options.output !== 'json') {
      throw new InvalidArgumentError(`--json is -o json: give one of --json and -o ${options.output}`);
    }
    return 'json';
  }
  return options.output ?? 'table';
}

/** A client for the API the user pointed at. */
export function clientFor(command: Command): FerryClient {
  const options = globalOptions(command);
  return new FerryClient(options.api ?? process.env.FERRY_API_URL ?? DEFAULT_API_URL, {
    token: () => cliToken(options.token, options.dataDir),
  });
}

/**
 * Prints `json` (pretty JSON for `--json`/`-o json`, YAML for `-o yaml`) or the text `human(wide)` builds (`wide` is
 * true for `-o wide`: tables show more columns).
 */
export function output(command: Command, json: unknown, human: (wide: boolean) => string): void {
  const format = globalOptions(command).output;
  if (format === 'json') process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write(toYaml(json));
  else process.stdout.write(`${human(format === 'wide')}\n`);
}
