#!/usr/bin/env node
/**
 * The attnviz command line: a thin layer over the library. Bad input prints one line naming the cause and
 * exits 2; `--debug` adds the stack trace.
 */
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { aggregate, parseAggregate } from '../analysis/aggregate.js';
import type { Attention } from '../core/attention.js';
import { readAttentionFile, writeAttentionFile } from '../core/attention-file.js';
import { AttnvizError } from '../core/errors.js';
import { numberOption, required, type Command, type Options, type Values } from './args.js';
import { compare } from './compare.js';
import { heads } from './heads.js';
import { outputFormats, writeImage, writeText } from './outputs.js';
import { writeFileAtomic } from '../core/safetensors.js';
import { loadModel } from '../models/load-model.js';
import { renderHtml } from '../export/html.js';
import { renderReport, reportJson, stepsReport } from '../export/report.js';
import { renderImage, renderReportImage } from '../export/image.js';
import { VIEWS, type ViewName } from '../views/mount.js';

const USAGE = `usage: attnviz <command> [options]

commands:
  extract --model <folder|hub id> --text "<A>" [--pair "<B>"] --out <file.safetensors> [--truncate]
          [--target "<T>" | --max-new-tokens N] [--aggregate mean|max|rollout]
      Run the model and write every layer's and head's attention, queries and keys to an attention file
      (docs/attention-file.md). Encoder-decoder models (BART, Marian, T5, …) read --text with the encoder and
      --target with the decoder (teacher forcing), or generate N target tokens greedily. --aggregate
      replaces each layer's heads by one pseudo-head: their mean, their max, or the attention rollout
      through that layer (docs/analysis.md); q and k are then left out.
  export --view head|model|neuron (--model <m> --text "<A>" [--pair "<B>"] | --from <file.safetensors>)
         -o <out.html|out.png|out.svg> [--layer N] [--theme light|dark] [--aggregate mean|max|rollout|all]
      Write a view as one self-contained HTML file (works offline, from file://) or as a PNG or SVG image
      (images need Chromium: /usr/bin/chromium or CHROMIUM_PATH). --aggregate: the head or model view of
      the pseudo-layers (as for extract); all: a "Layers:" select in the page switches between the heads and
      each aggregate.
  generate --model <folder|hub id|file.gguf> [--prompt "<text>"] --max-new-tokens N
           [--temperature T] [--top-p P] [--seed S] [--out <file.safetensors>]
           [--report <steps.html|.json|.png> [--alternatives K]]
      Continue the prompt (without one: from BOS) with a decoder (Llama, Mistral, Qwen2, GGUF llama) and
      print the text; --out writes the attention over prompt + generated tokens. --temperature 0 is greedy
      (defaults: temperature 1, top-p 0.9, a random seed, printed so a run can be repeated). --report: the
      generation step by step (a step slider; each token's probability and the K most likely tokens,
      default 5; the attention of the position that produced it over its context).
${compare.usage}
${heads.usage}
  serve [--port P] [--model M] [--models-dir D]… [--host H --allow-remote]
      Serve the app (the engine and the three views in the browser) on http://127.0.0.1:P/ (default 8700)
      and print its URL. --model: the model it starts on (default: the embedded Universal Sentence Encoder
      lite, no download); --models-dir (repeatable): folders whose models the app lists and may load.
      API: docs/server-api.md.

options for every command:
  --debug     print stack traces
  --help      this text`;

/** --model, --text, --pair, --truncate, and for encoder-decoder models --target or --max-new-tokens: the options that run a model. */
const MODEL_OPTIONS: Options = {
  model: { type: 'string' },
  text: { type: 'string' },
  pair: { type: 'string' },
  truncate: { type: 'boolean' },
  target: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  aggregate: { type: 'string' },
};

const COMMANDS: Record<string, Pick<Command, 'options' | 'run'>> = {
  compare,
  heads,
  generate: {
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string', short: 'o' },
      report: { type: 'string' },
      alternatives: { type: 'string' },
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
      const report = typeof v.report === 'string' ? v.report : null;
      const reportFormat =
        report === null ? null : outputFormats([report], ['html', 'json', 'png'] as const, '--report')[0];
      const alternatives =
        numberOption(v, 'alternatives', (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer') ??
        (report === null ? 0 : 5);
      const m = await loadModel(model, { extract: out !== null || report !== null });
      try {
        const prompt = (v.prompt as string | undefined) ?? null;
        const g = await m.generate(prompt, { maxNewTokens, temperature, topP, seed, alternatives });
        console.log(g.text);
        if (report !== null && g.attention) {
          const data = stepsReport(g, model, prompt ?? '', temperature);
          await writeText(
            report,
            reportFormat === 'json'
              ? reportJson(data)
              : renderReport(data, { a: g.attention }, `attnviz generate — ${model}`),
          );
          console.error(`wrote ${report}: ${g.steps?.length ?? 0} steps`);
        }
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
    },
    async run(v) {
      const out = required(v, 'out');
      if (v.aggregate === 'all')
        throw new AttnvizError('--aggregate all is for export (a select in the page): use mean, max or rollout');
      const a = aggregated(await attentionFrom(v), v);
      await writeAttentionFile(out, a);
      const [layers, heads, T] = a.attention.dims;
      const ed = a.encoderDecoder;
      console.error(
        ed
          ? `wrote ${out}: ${layers} encoder layers, ${ed.decoder.dims[0]} decoder layers × ${heads} heads × ${T} source and ${ed.decoderTokens.length} target tokens`
          : `wrote ${out}: ${layers} layers × ${heads} heads × ${T} tokens`,
      );
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
      const view = required(v, 'view') as ViewName;
      if (!VIEWS.includes(view)) throw new AttnvizError(`--view must be one of ${VIEWS.join(', ')}, not "${view}"`);
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
      if (v.aggregate !== undefined && view === 'neuron')
        throw new AttnvizError('--aggregate has no queries or keys to show in the neuron view: use head or model');
      // --aggregate all: the page offers the model's heads and each aggregate in a "Layers:" select.
      if (v.aggregate === 'all') options.aggregates = true;
      const a = aggregated(typeof v.from === 'string' ? await readAttentionFile(v.from) : await attentionFrom(v), v);
      if (typeof options.layer === 'number' && options.layer >= a.attention.dims[0])
        throw new AttnvizError(`--layer ${options.layer} is out of range: the data has ${a.attention.dims[0]} layers`);
      const html = renderHtml(a, { view, options });
      const bytes = format === 'html' ? html : await renderImage(html, format);
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

/** With --aggregate, the pseudo-layers (analysis/aggregate.ts) in place of the model's layers ('all' keeps them). */
function aggregated(a: Attention, v: Values): Attention {
  return typeof v.aggregate === 'string' && v.aggregate !== 'all' ? aggregate(a, parseAggregate(v.aggregate)) : a;
}

async function attentionFrom(v: Values): Promise<Attention> {
  const model = required(v, 'model');
  const text = required(v, 'text');
  const m = await loadModel(model);
  try {
    const maxNewTokens = numberOption(
      v,
      'max-new-tokens',
      (n) => Number.isSafeInteger(n) && n > 0,
      'a positive integer',
    );
    return await m.attention(text, {
      pair: v.pair as string | undefined,
      truncate: v.truncate === true,
      target: v.target as string | undefined,
      ...(maxNewTokens !== undefined ? { maxNewTokens } : {}),
    });
  } finally {
    await m.release();
  }
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
    let values: Values;
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
