#!/usr/bin/env node
/**
 * The attnviz command line: a thin layer over the library. Bad input prints one line naming the cause and
 * exits 2; `--debug` adds the stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { writeAttentionFile } from '../core/attention-file.js';
import { AttnvizError } from '../core/errors.js';
import { loadModel } from '../engine.js';

const USAGE = `usage: attnviz <command> [options]

commands:
  extract --model <folder|hub id> --text "<A>" [--pair "<B>"] --out <file.safetensors> [--truncate]
      Run the model and write every layer's and head's attention, queries and keys to an attention file
      (docs/attention-file.md).

options for every command:
  --debug     print stack traces
  --help      this text`;

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMANDS: Record<string, { options: Options; run: (values: Record<string, string | boolean | undefined>) => Promise<void> }> = {
  extract: {
    options: {
      model: { type: 'string' },
      text: { type: 'string' },
      pair: { type: 'string' },
      out: { type: 'string', short: 'o' },
      truncate: { type: 'boolean' },
    },
    async run(v) {
      const model = required(v, 'model');
      const text = required(v, 'text');
      const out = required(v, 'out');
      const m = await loadModel(model);
      try {
        const a = await m.attention(text, { pair: v.pair as string | undefined, truncate: v.truncate === true });
        await writeAttentionFile(out, a);
        const [layers, heads, T] = a.attention.dims;
        console.error(`wrote ${out}: ${layers} layers × ${heads} heads × ${T} tokens`);
      } finally {
        await m.release();
      }
    },
  },
};

function required(v: Record<string, string | boolean | undefined>, name: string): string {
  const value = v[name];
  if (typeof value !== 'string') throw new AttnvizError(`missing --${name}`);
  return value;
}

async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [name, ...rest] = args;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  try {
    if (!command) throw new AttnvizError(`unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    let values: Record<string, string | boolean | undefined>;
    try {
      ({ values } = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
    } catch (e) {
      throw new AttnvizError(`${name}: ${(e as Error).message}`);
    }
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    await command.run(values);
    return 0;
  } catch (e) {
    const err = e as Error;
    console.error(`attnviz: ${debug ? err.stack : err.message.split('\n')[0]}`);
    return e instanceof AttnvizError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
