/** Every `attnviz` command, in the order `attnviz --help` lists them. A new command: one file, one line here. */
import type { Command } from './command.js';
import { exportCommand } from './export.js';
import { extract } from './extract.js';
import { generate } from './generate.js';
import { serve } from './serve.js';

export const COMMANDS: readonly Command[] = [extract, exportCommand, generate, serve];
