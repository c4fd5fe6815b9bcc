/** `ferry completion bash|zsh|fish`: prints the shell's completion script for the whole command tree. */
import { Argument, type Command } from 'commander';
import { completionScript, SHELLS, type Shell } from '../completion.js';

const HELP = `
Load it in the current shell, or install it for every new one:
  bash  source <(ferry completion bash)     ferry completion bash > /etc/bash_completion.d/ferry
  zsh   source <(ferry completion zsh)      ferry completion zsh > "\${fpath[1]}/_ferry"
  fish  ferry completion fish | source      ferry completion fish > ~/.config/fish/completions/ferry.fish`;

/** Adds `completion` to `program` (the script covers every command registered on `program`). */
export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (commands, aliases, options, choices)')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .addHelpText('after', HELP)
    .action((shell: Shell) => {
      process.stdout.write(completionScript(shell, program));
    });
}
