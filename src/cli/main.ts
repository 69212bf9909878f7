#!/usr/bin/env node
/**
 * The attnviz command line: a thin layer over the library, one file per command (commands.ts lists them).
 * Bad input prints one line naming the cause and exits 2; `--debug` adds the stack trace.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AttnvizError, systemErrorMessage } from '../core/errors.js';
import type { Command, Values } from './command.js';
import { COMMANDS, findCommand } from './commands.js';

const indent = (text: string, by: string) => text.replace(/^(?=.)/gm, by);

const COMMON = `options for every command:
  --debug     print stack traces
  --help, -h  this command's help`;

async function usage(): Promise<string> {
  const commands = await Promise.all(Object.values(COMMANDS).map((load) => load()));
  return `usage: attnviz <command> [options]     (attnviz <command> --help for one command)

commands:
${commands.map((c) => `  ${c.synopsis}\n${indent(c.description, '      ')}`).join('\n')}

${COMMON}
  --version   the version of attnviz`;
}

function commandUsage(c: Command): string {
  return `usage: attnviz ${c.synopsis}\n\n${c.description}\n\n${COMMON}`;
}

/** The version in package.json: main.js runs as dist/src/cli/main.js, three folders below it. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** The exit status, or null when the command keeps running after run() returns (a server). */
async function main(argv: string[]): Promise<number | null> {
  const debug = argv.includes('--debug');
  // The CLI is a bundle (vite.cli.config.ts): stack traces name src/ lines where its maps are (a built checkout).
  if (debug) process.setSourceMapsEnabled(true);
  const args = argv.filter((a) => a !== '--debug');
  const [name, ...rest] = args;
  if (name === '--version' || name === '-v') {
    console.log(version());
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? await findCommand(rest[0]) : undefined;
    console.log(topic ? commandUsage(topic) : await usage());
    return name ? 0 : 2;
  }
  try {
    const command = await findCommand(name);
    if (!command) throw new AttnvizError(`unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    let values: Values;
    try {
      ({ values } = parseArgs({
        args: rest,
        options: { ...command.options, help: { type: 'boolean', short: 'h' } },
        strict: true,
        allowPositionals: false,
      }));
    } catch (e) {
      throw new AttnvizError(`${name}: ${(e as Error).message} (attnviz ${name} --help lists its options)`);
    }
    if (values.help) {
      console.log(commandUsage(command));
      return 0;
    }
    await command.run(values);
    return command.keepsRunning ? null : 0;
  } catch (e) {
    // A file system error that reached here names a path the user gave: it is their input, phrased for them.
    const system = systemErrorMessage(e);
    const err = e as Error;
    console.error(`attnviz: ${debug ? err.stack : (system ?? err.message.split('\n')[0])}`);
    return e instanceof AttnvizError || system !== null ? 2 : 1;
  }
}

/**
 * Ends the process once stdout and stderr are flushed (pipes are asynchronous on some systems), rather than
 * letting Node tear its environment down as it does at a natural end (the heap unmapped page by page, finalizers,
 * worker threads joined): ~40 ms of CPU of a bert-tiny `extract` (bench/RESULTS.md, start-up).
 */
function exit(code: number): void {
  process.exitCode = code;
  let open = 2;
  const flushed = () => --open === 0 && process.exit(code);
  process.stdout.write('', flushed);
  process.stderr.write('', flushed);
}

const code = await main(process.argv.slice(2));
if (code !== null) exit(code);
