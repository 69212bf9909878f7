/**
 * What it costs that a model's extracting session follows the input's length (LoadOptions.staged; one session
 * while every layer's outputs at that length fit the budget, a session per layer above; models/sized-session.ts),
 * on a random ModernBERT-base-shaped checkpoint (hidden 768, 12 heads, intermediate 1152, vocabulary 50368; the
 * family with 8192 positions, whose longest input's outputs pass the 1 GB budget 15 times):
 *
 * - one model with the default choice, inputs short (128 tokens) and long (the shortest multiple of 64 past the
 *   budget) in turn: each call's time, the calls that change the kind (a session released, the other created)
 *   against the ones that do not, resident memory after each;
 * - creating each kind (loadModel with staged false / true) and the memory each adds: what holding both kinds
 *   at once would cost, the alternative to changing kinds;
 * - short inputs on per-layer sessions: what deciding at load from the longest input (before) cost them.
 *
 *   node --expose-gc dist/bench/session-kind.js [--layers N] [--runs N] [--threads N] [--budget BYTES]
 *   node --expose-gc dist/bench/session-kind.js --peak TOKENS [--layers N] [--threads N]
 *
 * `--peak` measures instead a long input's memory (issue 9 item 3), in a fresh process: the model loaded with the
 * defaults, an input of TOKENS tokens (ModernBERT's longest, 8192, by default) written layer by layer into an F16
 * attention file (`attnviz extract --dtype f16`'s path; the file in the system's temporary folder, removed after):
 * seconds, peak RSS (VmHWM) against the RSS after loading and against one layer's float32 probabilities, which a
 * stage holding whole layers held at once; target: peak ≤ the loaded model + 2 GB (default 3 layers: one
 * global, two local; the peak does not grow with the layer count, as each layer reuses the buffers of the one
 * before).
 *
 * `--layers` (default 22) and `--budget` (default ONE_SESSION_BYTES) shorten a run on a loaded machine: a smaller
 * budget makes the long input shorter. Long inputs are read as `stream()` (one layer's outputs at a time on
 * per-layer sessions), short ones with `attention()`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAttentionStream } from '../src/core/files.js';
import { familyFor } from '../src/graph/families.js';
import { readConfig } from '../src/load/config.js';
import { Model, ONE_SESSION_BYTES, sessionKindFor } from '../src/models/checkpoint-model.js';
import { writeFamilyCheckpoint } from './family-checkpoint.js';
import { loadLine, machineLine, median, option } from './harness.js';
import { exactText } from './texts.js';

const layers = Number(option('--layers') ?? 22);
const runs = Number(option('--runs') ?? 3);
const threads = option('--threads') === undefined ? undefined : Number(option('--threads'));
const budget = Number(option('--budget') ?? ONE_SESSION_BYTES);
const peakTokens = option('--peak') === undefined ? undefined : Number(option('--peak') || 8192);

/** Resident memory in MB: all, anonymous (onnxruntime's copies, arenas, our arrays), file-backed (mapped weights). */
function resident(): string {
  (globalThis as { gc?: () => void }).gc?.();
  const status = readFileSync('/proc/self/status', 'utf8');
  const mb = (field: string) => Math.round(Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024);
  return `${mb('VmRSS')} MB (anonymous ${mb('RssAnon')}, file ${mb('RssFile')})`;
}

async function timed(call: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await call();
  return performance.now() - t;
}

/** Loads `dir` as `what` says, in this fresh process, and prints the time and the memory it adds. */
async function memory(dir: string, what: 'one' | 'staged' | 'both'): Promise<void> {
  const before = resident();
  const kinds = what === 'both' ? [false, true] : [what === 'staged'];
  const models: Model[] = [];
  const times: string[] = [];
  for (const staged of kinds) {
    const t = await timed(async () => {
      models.push(await Model.load(dir, { threads, staged }));
    });
    times.push(`staged: ${staged} ${t.toFixed(0)} ms`);
  }
  // A first run maps in the weights every call reads.
  const text = exactText((t) => models[0].tokenizer.encode(t).ids.length, 128);
  for (const m of models) await m.attention(text);
  console.log(`| ${what} | ${times.join(', ')} | ${before} | ${resident()} |`);
  await Promise.all(models.map((m) => m.release()));
}

/** Short and long inputs in turn on one model with the default choice. */
async function calls(dir: string, long: number): Promise<void> {
  let model!: Model;
  const load = await timed(async () => {
    model = await Model.load(dir, { threads, oneSessionBytes: budget });
  });
  console.log(`load (default: creates the one-session kind): ${load.toFixed(0)} ms, ${resident()}`);
  const short = exactText((t) => model.tokenizer.encode(t).ids.length, 128);
  const longText = exactText((t) => model.tokenizer.encode(t).ids.length, long);
  const streamed = async () => {
    for await (const _ of model.stream(longText, { reuse: true }));
  };
  const shortCall = () => model.attention(short, { reuse: true });
  const steps: [string, () => Promise<unknown>][] = [
    ['short', shortCall],
    ['long', streamed],
    ['short', shortCall],
    ['long', streamed],
  ];
  console.log('| input | kind | first call (ms) | next calls, median (ms) | resident after |');
  console.log('|---|---|---|---|---|');
  for (const [name, call] of steps) {
    const first = await timed(call);
    const next: number[] = [];
    for (let i = 0; i < runs; i++) next.push(await timed(call));
    console.log(
      `| ${name} | ${model.sessionKind} | ${first.toFixed(0)} | ${median(next).toFixed(0)} | ${resident()} |`,
    );
  }
  await model.release();
}

/** Short inputs on one session and on per-layer sessions (the kind chosen at load before), interleaved. */
async function shortOnBoth(dir: string): Promise<void> {
  const [one, staged] = [
    await Model.load(dir, { threads, staged: false }),
    await Model.load(dir, { threads, staged: true }),
  ];
  const short = exactText((t) => one.tokenizer.encode(t).ids.length, 128);
  const a: number[] = [],
    b: number[] = [];
  for (let i = -1; i < 2 * runs; i++) {
    const ta = await timed(() => one.attention(short, { reuse: true }));
    const tb = await timed(() => staged.attention(short, { reuse: true }));
    if (i >= 0) {
      a.push(ta);
      b.push(tb);
    }
  }
  console.log(
    `short input (128 tokens), median of ${2 * runs}: one session ${median(a).toFixed(0)} ms, ` +
      `per layer ${median(b).toFixed(0)} ms (${(median(b) / median(a)).toFixed(2)}×)`,
  );
  await Promise.all([one.release(), staged.release()]);
}

/** VmRSS and VmHWM (peak since the last reset) in bytes. */
function memoryNow(): { rss: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** A long input written layer by layer into an F16 attention file, in this fresh process: time and peak memory. */
async function peak(dir: string, tokens: number): Promise<void> {
  const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;
  const model = await Model.load(dir, { threads });
  const text = exactText((t) => model.tokenizer.encode(t).ids.length, tokens);
  // A first short call maps in the weights; then the peak counts from the loaded model's resident memory.
  await model.attention(exactText((t) => model.tokenizer.encode(t).ids.length, 128));
  (globalThis as { gc?: () => void }).gc?.();
  const loaded = memoryNow().rss;
  writeFileSync('/proc/self/clear_refs', '5');
  const out = mkdtempSync(join(os.tmpdir(), 'attnviz-peak-'));
  try {
    const file = join(out, 'long.safetensors');
    const t = performance.now();
    await writeAttentionStream(file, model.stream(text), { dtype: 'F16' });
    const seconds = (performance.now() - t) / 1000;
    const { heads } = model.dims;
    const layerProbs = heads * tokens * tokens * 4;
    const top = memoryNow().peak;
    console.log(
      `${tokens} tokens, ${model.dims.layers} layers, kind ${model.sessionKind}: ${seconds.toFixed(1)} s, ` +
        `file ${gb(statSync(file).size)}; RSS after loading ${gb(loaded)}, peak ${gb(top)} ` +
        `(+${gb(top - loaded)}; one layer's float32 probabilities ${gb(layerProbs)}): ` +
        `peak ≤ loaded + 2 GB ${top <= loaded + 2e9 ? 'met' : 'not met'}`,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
    await model.release();
  }
}

/** Runs `part` in a fresh node process (memory figures of its own), printing what it prints. */
function inChild(part: string, dir: string, extra: string[] = []): void {
  const args = ['--expose-gc', fileURLToPath(import.meta.url), '--part', part, '--dir', dir, ...extra];
  for (const [name, value] of Object.entries({
    '--layers': layers,
    '--runs': runs,
    '--threads': threads,
    '--budget': budget,
  }))
    if (value !== undefined) args.push(name, String(value));
  const { status } = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (status !== 0) throw new Error(`${part} failed (exit ${status})`);
}

async function main(): Promise<void> {
  const part = option('--part');
  const given = option('--dir');
  if (part && given) {
    if (part === 'calls') return calls(given, Number(option('--long')));
    if (part === 'short') return shortOnBoth(given);
    if (part === 'peak') return peak(given, Number(option('--tokens')));
    return memory(given, part as 'one' | 'staged' | 'both');
  }
  const dir = writeFamilyCheckpoint(
    {
      model_type: 'modernbert',
      hidden_size: 768,
      num_attention_heads: 12,
      num_hidden_layers: peakTokens === undefined ? layers : Number(option('--layers') ?? 3),
      intermediate_size: 1152,
      vocab_size: 50368,
    },
    'bert-tiny',
  );
  try {
    if (peakTokens !== undefined) {
      console.log(`session-kind benchmark, a long input's peak memory: ModernBERT-base shape`);
      console.log(machineLine());
      console.log(loadLine('at the start'));
      inChild('peak', dir, ['--tokens', String(peakTokens)]);
      console.log(loadLine('at the end'));
      return;
    }
    const config = await readConfig(dir);
    const dims = familyFor(config).readConfig(config);
    let long = 64;
    while (sessionKindFor(dims, long, budget) === 'one') long += 64;
    console.log(
      `session-kind benchmark: ModernBERT-base shape, ${layers} layers, short 128 tokens, long ${long} tokens ` +
        `(budget ${(budget / 1e9).toFixed(2)} GB), ${runs} runs per step, ${threads ?? 'all'} threads`,
    );
    console.log(machineLine());
    console.log(loadLine('at the start'));
    console.log(
      'One model, the default choice, inputs in turn (a change of kind releases one session, creates the other):',
    );
    inChild('calls', dir, ['--long', String(long)]);
    console.log('Memory, each in a fresh process after one 128-token call per model:');
    console.log('| kinds held | load | resident before | resident after |');
    console.log('|---|---|---|---|');
    for (const what of ['one', 'staged', 'both']) inChild(what, dir);
    inChild('short', dir);
    console.log(loadLine('at the end'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
