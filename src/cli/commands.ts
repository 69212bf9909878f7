/**
 * Every `attnviz` command, in the order `attnviz --help` lists them, each imported only when it is run (or its
 * help shown): a start loads that command's modules, not every command's. A new command: one file, one line here.
 */
import type { Command } from './command.js';

export const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  extract: async () => (await import('./extract.js')).extract,
  export: async () => (await import('./export.js')).exportCommand,
  neurons: async () => (await import('./neurons.js')).neurons,
  generate: async () => (await import('./generate.js')).generate,
  compare: async () => (await import('./compare.js')).compare,
  heads: async () => (await import('./heads.js')).heads,
  serve: async () => (await import('./serve.js')).serve,
};

/** The command called `name`, or undefined when there is none. */
export function findCommand(name: string | undefined): Promise<Command> | undefined {
  return name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name]() : undefined;
}
