/** Every `attnviz` command, in the order `attnviz --help` lists them. A new command: one file, one line here. */
import type { Command } from './command.js';
import { compare } from './compare.js';
import { exportCommand } from './export.js';
import { extract } from './extract.js';
import { generate } from './generate.js';
import { heads } from './heads.js';
import { neurons } from './neurons.js';
import { serve } from './serve.js';

export const COMMANDS: readonly Command[] = [extract, exportCommand, neurons, generate, compare, heads, serve];
