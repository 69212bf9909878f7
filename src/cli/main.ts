#!/usr/bin/env node
/**
 * The attnviz command line: a thin layer over the library. Bad input prints one line naming the cause and
 * exits 2; `--debug` adds the stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import type { Attention } from '../core/attention.js';
import {
  FLOAT_DTYPES,
  readAttentionFile,
  writeAttentionFile,
  writeAttentionStream,
  type FloatDType,
} from '../core/attention-file.js';
import { AttnvizError } from '../core/errors.js';
import { writeFileAtomic } from '../core/safetensors.js';
import { loadModel } from '../models/load-model.js';
import { Model } from '../models/checkpoint-model.js';
// The views, the HTML export and the browser driver are imported by the commands that use them (export,
// serve), so that extract and generate start without loading them.

const USAGE = `usage: attnviz <command> [options]

commands:
  extract --model <folder|hub id> --text "<A>" [--pair "<B>"] --out <file.safetensors> [--truncate]
          [--dtype f32|f16|bf16] [--layers 0,5-7] [--heads 0-3] [--target "<T>" | --max-new-tokens N]
      Run the model and write every layer's and head's attention, queries and keys to an attention file
      (docs/attention-file.md), layer by layer: memory holds the weights and one layer's outputs. --dtype:
      the file's float type (default f32); --layers, --heads: only these (indices from 0, ranges inclusive).
      Encoder-decoder models (BART, Marian, T5, …) read --text with the encoder and --target with the
      decoder (teacher forcing), or generate N target tokens greedily.
  export --view head|model|neuron (--model <m> --text "<A>" [--pair "<B>"] | --from <file.safetensors>)
         -o <out.html|out.png|out.svg> [--layer N] [--theme light|dark]
      Write a view as one self-contained HTML file (works offline, from file://) or as a PNG or SVG image
      (images need Chromium: /usr/bin/chromium or CHROMIUM_PATH).
  generate --model <folder|hub id|file.gguf> [--prompt "<text>"] --max-new-tokens N
           [--temperature T] [--top-p P] [--seed S] [--out <file.safetensors>]
      Continue the prompt (without one: from BOS) with a decoder (Llama, Mistral, Qwen2, GGUF llama) and
      print the text; --out writes the attention over prompt + generated tokens. --temperature 0 is greedy
      (defaults: temperature 1, top-p 0.9, a random seed, printed so a run can be repeated).
  serve [--port P] [--model M] [--models-dir D]… [--host H --allow-remote]
      Serve the app (the engine and the three views in the browser) on http://127.0.0.1:P/ (default 8700)
      and print its URL. --model: the model it starts on (default: the embedded Universal Sentence Encoder
      lite, no download); --models-dir (repeatable): folders whose models the app lists and may load.
      API: docs/server-api.md.

options for every command:
  --debug     print stack traces
  --help      this text`;

type Options = NonNullable<ParseArgsConfig['options']>;

/** --model, --text, --pair, --truncate, and for encoder-decoder models --target or --max-new-tokens: the options that run a model. */
const MODEL_OPTIONS: Options = {
  model: { type: 'string' },
  text: { type: 'string' },
  pair: { type: 'string' },
  truncate: { type: 'boolean' },
  target: { type: 'string' },
  'max-new-tokens': { type: 'string' },
};

const COMMANDS: Record<
  string,
  { options: Options; run: (values: Record<string, string | boolean | undefined>) => Promise<void> }
> = {
  generate: {
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string', short: 'o' },
    },
    async run(v) {
      const model = required(v, 'model');
      const maxNewTokens = numberOption(
        v,
        'max-new-tokens',
        (n) => Number.isSafeInteger(n) && n > 0,
        'a positive integer',
      );
      if (maxNewTokens === undefined) throw new AttnvizError('missing --max-new-tokens');
      const temperature = numberOption(v, 'temperature', (n) => n >= 0, 'a number ≥ 0') ?? 1;
      const topP = numberOption(v, 'top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]') ?? 0.9;
      const seed = numberOption(v, 'seed', (n) => Number.isSafeInteger(n) && n >= 0, 'a non-negative integer');
      const out = typeof v.out === 'string' ? v.out : null;
      const m = await loadModel(model, { extract: out !== null });
      try {
        const g = await m.generate((v.prompt as string | undefined) ?? null, { maxNewTokens, temperature, topP, seed });
        console.log(g.text);
        if (temperature > 0 && seed === undefined) console.error(`seed ${g.seed} (--seed ${g.seed} repeats this text)`);
        if (out !== null && g.attention) {
          await writeAttentionFile(out, g.attention);
          const [layers, heads, T] = g.attention.attention.dims;
          console.error(
            `wrote ${out}: ${layers} layers × ${heads} heads × ${T} tokens (${g.promptLength} from the prompt)`,
          );
        }
      } finally {
        await m.release();
      }
    },
  },
  extract: {
    options: {
      ...MODEL_OPTIONS,
      out: { type: 'string', short: 'o' },
      dtype: { type: 'string' },
      layers: { type: 'string' },
      heads: { type: 'string' },
    },
    async run(v) {
      const [model, text, out] = [required(v, 'model'), required(v, 'text'), required(v, 'out')];
      const dtype = dtypeOption(v);
      const selection = { layers: indexList(v, 'layers'), heads: indexList(v, 'heads') };
      const m = await loadModel(model);
      try {
        // Checkpoint models stream layer by layer into the file; the others give their Attention whole.
        if (m instanceof Model && !m.family.encoderDecoder) {
          checkNoTarget(v);
          const stream = m.stream(text, {
            pair: v.pair as string | undefined,
            truncate: v.truncate === true,
            ...selection,
          });
          await writeAttentionStream(out, stream, { dtype });
          const { layers, heads, tokens } = stream.header;
          console.error(`wrote ${out}: ${layers.length} layers × ${heads.length} heads × ${tokens.length} tokens`);
          return;
        }
        if (selection.layers || selection.heads)
          throw new AttnvizError(`--layers and --heads work with checkpoint models, not with ${m.source}`);
        const a = await attentionOf(m, v);
        await writeAttentionFile(out, a, { dtype });
        const [layers, heads, T] = a.attention.dims;
        const ed = a.encoderDecoder;
        console.error(
          ed
            ? `wrote ${out}: ${layers} encoder layers, ${ed.decoder.dims[0]} decoder layers × ${heads} heads × ${T} source and ${ed.decoderTokens.length} target tokens`
            : `wrote ${out}: ${layers} layers × ${heads} heads × ${T} tokens`,
        );
      } finally {
        await m.release();
      }
    },
  },
  export: {
    options: {
      ...MODEL_OPTIONS,
      from: { type: 'string' },
      view: { type: 'string' },
      out: { type: 'string', short: 'o' },
      layer: { type: 'string' },
      theme: { type: 'string' },
    },
    async run(v) {
      const { VIEWS } = await import('../views/mount.js');
      const view = VIEWS.find((name) => name === v.view);
      if (view === undefined)
        throw new AttnvizError(`--view must be one of ${VIEWS.join(', ')}, not "${required(v, 'view')}"`);
      const out = required(v, 'out');
      const format = extname(out).slice(1).toLowerCase();
      if (format !== 'html' && format !== 'png' && format !== 'svg')
        throw new AttnvizError(`--out must end in .html, .png or .svg, not "${out}"`);
      const options: Record<string, unknown> = {};
      if (typeof v.layer === 'string') {
        const layer = Number(v.layer);
        if (!Number.isInteger(layer) || layer < 0)
          throw new AttnvizError(`--layer must be a layer index, not "${v.layer}"`);
        options.layer = layer;
      }
      if (v.theme !== undefined) {
        if (v.theme !== 'light' && v.theme !== 'dark')
          throw new AttnvizError(`--theme must be light or dark, not "${String(v.theme)}"`);
        options.theme = v.theme;
      }
      const a = typeof v.from === 'string' ? await readAttentionFile(v.from) : await attentionFrom(v);
      if (typeof options.layer === 'number' && options.layer >= a.attention.dims[0])
        throw new AttnvizError(`--layer ${options.layer} is out of range: the data has ${a.attention.dims[0]} layers`);
      const html = (await import('../export/html.js')).renderHtml(a, { view, options });
      const bytes = format === 'html' ? html : await (await import('../export/image.js')).renderImage(html, format);
      await writeFileAtomic(out, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
      console.error(`wrote ${out}: ${view} view of ${a.tokens.length} tokens`);
    },
  },
  serve: {
    options: {
      port: { type: 'string', short: 'p' },
      model: { type: 'string' },
      'models-dir': { type: 'string', multiple: true },
      host: { type: 'string' },
      'allow-remote': { type: 'boolean' },
    },
    async run(v) {
      const { startServer, DEFAULT_PORT } = await import('../server/server.js');
      const port =
        numberOption(v, 'port', (n) => Number.isInteger(n) && n >= 0 && n < 65536, 'a port number') ?? DEFAULT_PORT;
      const roots = (v['models-dir'] as unknown as string[] | undefined) ?? [];
      let model = typeof v.model === 'string' ? v.model : undefined;
      // A local --model is served as a folder in its own root.
      if (model !== undefined && existsSync(model)) {
        roots.push(resolve(model));
        model = `path:${resolve(model)}`;
      }
      const server = await startServer({
        port,
        host: typeof v.host === 'string' ? v.host : undefined,
        allowRemote: v['allow-remote'] === true,
        model,
        modelRoots: roots,
        preload: true,
      });
      console.log(`attnviz: serving the app at ${server.url}  (Ctrl+C stops)`);
      const stop = () => void server.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
  },
};

async function attentionFrom(v: Record<string, string | boolean | undefined>): Promise<Attention> {
  const m = await loadModel(required(v, 'model'));
  try {
    return await attentionOf(m, v);
  } finally {
    await m.release();
  }
}

/** The Attention of --text (--pair, --target, --max-new-tokens, --truncate) on a loaded model. */
function attentionOf(m: Model, v: Record<string, string | boolean | undefined>): Promise<Attention> {
  const text = required(v, 'text');
  const maxNewTokens = numberOption(v, 'max-new-tokens', (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer');
  return m.attention(text, {
    pair: v.pair as string | undefined,
    truncate: v.truncate === true,
    target: v.target as string | undefined,
    ...(maxNewTokens !== undefined ? { maxNewTokens } : {}),
  });
}

/** --target and --max-new-tokens are for encoder-decoder models only. */
function checkNoTarget(v: Record<string, string | boolean | undefined>): void {
  if (v.target !== undefined || v['max-new-tokens'] !== undefined)
    throw new AttnvizError(
      `${String(v.model)} is not an encoder-decoder model: it takes no --target or --max-new-tokens`,
    );
}

/** --dtype: the attention file's float type; f32 when absent. */
function dtypeOption(v: Record<string, string | boolean | undefined>): FloatDType {
  if (v.dtype === undefined) return 'F32';
  const dtype = FLOAT_DTYPES.find((d) => d === String(v.dtype).toUpperCase());
  if (!dtype)
    throw new AttnvizError(
      `--dtype must be one of ${FLOAT_DTYPES.map((d) => d.toLowerCase()).join(', ')}, not "${v.dtype}"`,
    );
  return dtype;
}

/** --layers / --heads: comma-separated indices and inclusive ranges ("0,5-7"); undefined when absent. */
function indexList(v: Record<string, string | boolean | undefined>, name: string): number[] | undefined {
  const value = v[name];
  if (value === undefined) return undefined;
  const out: number[] = [];
  for (const part of String(value).split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    const [from, to] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [Number.NaN, Number.NaN];
    if (!(from <= to) || to - from > 1e6)
      throw new AttnvizError(`--${name} must be indices and ranges such as 0,5-7, not "${String(value)}"`);
    for (let i = from; i <= to; i++) out.push(i);
  }
  return out;
}

/** A numeric option, checked by `valid` (described as `what` in the error); undefined when absent. */
function numberOption(
  v: Record<string, string | boolean | undefined>,
  name: string,
  valid: (n: number) => boolean,
  what: string,
): number | undefined {
  const value = v[name];
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || !valid(n)) throw new AttnvizError(`--${name} must be ${what}, not "${String(value)}"`);
  return n;
}

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
      ({ values } = parseArgs({
        args: rest,
        options: { ...command.options, help: { type: 'boolean', short: 'h' } },
        strict: true,
        allowPositionals: false,
      }));
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
