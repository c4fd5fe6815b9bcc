/**
 * Short names pxctl and kubectl users type: `vol` for `volume`, `ls` for every `list`, `rm` for every `delete` (and
 * `remove`). Added over the whole command tree after it is built, so a new `list` or `delete` gets its alias too.
 */
import type { Command } from 'commander';

/** Command name -> its alias. */
export const ALIASES: Readonly<Record<string, string>> = {
  volume: 'vol',
  list: 'ls',
  delete: 'rm',
  remove: 'rm',
};

/** Adds the aliases to `command` and every command below it (a name that is already taken there is skipped). */
export function addAliases(command: Command): void {
  const taken = new Set(command.commands.flatMap((c) => [c.name(), ...c.aliases()]));
  for (const sub of command.commands) {
    const alias = ALIASES[sub.name()];
    if (alias !== undefined && !taken.has(alias)) {
      sub.alias(alias);
      taken.add(alias);
    }
    addAliases(sub);
  }
}
