import { execFile } from 'node:child_process';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { commandTree, completionScript } from './completion.js';
import { createProgram } from './program.js';

/** What the bash script offers for the words typed so far (the last one is being completed). */
function bashComplete(script: string, words: string[]): Promise<string[]> {
  const body = `${script}
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ferry; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', body, 'bash', ...words], (error, stdout, stderr) =>
      error === null ? resolve(stdout.split('\n').filter((w) => w !== '')) : reject(new Error(stderr)),
    );
  });
}

/** Every command path of the tree with the command at its end. */
function paths(command: Command, prefix: string[] = []): [string[], Command][] {
  return command.commands.flatMap((c) => [
    [[...prefix, c.name()], c] as [string[], Command],
    ...paths(c, [...prefix, c.name()]),
  ]);
}

describe('ferry completion', () => {
  const program = createProgram();
  const bash = completionScript('bash', program);

  it('offers every subcommand and every option of every command, from the command tree itself', async () => {
    const all = paths(program);
    expect(all.length).toBeGreaterThan(40);
    for (const [path, command] of all) {
      const subs = await bashComplete(bash, ['ferry', ...path, '']);
      expect(subs, path.join(' ')).toEqual(expect.arrayContaining(command.commands.map((c) => c.name())));
      const options = await bashComplete(bash, ['ferry', ...path, '--']);
      const longs = command.options.map((o) => o.long).filter((l): l is string => l !== undefined);
      expect(options, path.join(' ')).toEqual(expect.arrayContaining([...longs, '--json', '--output', '--help']));
    }
  });

  it('follows aliases and skips options with their values, completes choices and fixed arguments', async () => {
    expect(await bashComplete(bash, ['ferry', 'vol', 'sn'])).toEqual(['snapshot']);
    expect(await bashComplete(bash, ['ferry', '--api', 'http://x', 'vol', 'snapshot', 'l'])).toEqual(['list']);
    expect(await bashComplete(bash, ['ferry', '-o', 'json', 'cloudsnap', 'schedules', 'ls', '--j'])).toEqual([
      '--json',
    ]);
    expect(await bashComplete(bash, ['ferry', '-o', ''])).toEqual(['table', 'wide', 'json', 'yaml']);
    expect(await bashComplete(bash, ['ferry', 'credentials', 'create', 'x', '--provider', ''])).toEqual([
      's3',
      'azure',
      'google',
      'directory',
    ]);
    expect(await bashComplete(bash, ['ferry', 'completion', ''])).toEqual(['bash', 'zsh', 'fish']);
    // An option value without choices completes nothing here: bash falls back to file names (-o default).
    expect(await bashComplete(bash, ['ferry', '--data-dir', ''])).toEqual([]);
  });

  it('writes zsh as the bash script under bashcompinit, and fish with one rule per command and option', () => {
    const zsh = completionScript('zsh', program);
    expect(zsh).toMatch(/^#compdef ferry\n/);
    expect(zsh).toContain('bashcompinit');
    expect(zsh.endsWith(bash)).toBe(true);
    const fish = completionScript('fish', program);
    const tree = commandTree(program);
    for (const node of tree) {
      for (const c of node.commands) {
        expect(fish).toContain(`-n '__ferry_at \\'${node.path}\\'' -f -a '${c.name}'`);
        for (const alias of c.aliases) expect(fish).toContain(`'${node.path}|${alias}'`);
      }
    }
    expect(fish).toContain("-l output -x -a 'table wide json yaml'");
  });
});
