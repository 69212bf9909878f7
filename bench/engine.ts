/**
 * Engine benchmark (prints figures; not a test). Generates random BERT-base-size and GPT-2-small-size
 * checkpoints in Hugging Face layout under a fresh temporary folder, then reports for each:
 *
 * - load time: `Model.load` wall time, with the extra outputs (`extract: true`) and without (`extract: false`);
 * - extraction time (`model.attention(text)`) at exactly 32, 128 and 512 tokens, and in the same process,
 *   interleaved run by run, a plain forward pass of the same weights without the extra outputs
 *   (`Model.load(dir, { extract: false })` then `forward(text)`), and their ratio;
 * - peak memory during load, measured in a fresh child process that does nothing but load (VmHWM from
 *   /proc/self/status), as a multiple of `model.weightBytes`; and the peak RSS of the timing process during
 *   one extraction at 512 tokens.
 *
 *   npm run bench                      # = node --expose-gc dist/bench/engine.js
 *   node --expose-gc dist/bench/engine.js --quick          # smoke run: fewer runs
 *   options: --quick  --runs N  --warmup N  --threads N  --model bert|gpt2  --json FILE
 *
 * Processes: this one only orchestrates. One child writes each checkpoint (streamed tensor by tensor, so
 * the generator's memory never pollutes a measurement), fresh children load it to measure memory, and one
 * more child per model does the timing. Tokenizers come from ../shared/golden/models/{bert,gpt2}-tiny beside
 * the repository (real bert-base-uncased and gpt2 vocabularies); without ../shared the benchmark says so and
 * exits 0.
 */
import { fork, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { safetensorsHeader } from '../src/core/safetensors.js';
import type { Model as CheckpointModel } from '../src/models/checkpoint-model.js';
import { exactText } from './texts.js';

const SELF = fileURLToPath(import.meta.url);
/** The repository root: this file runs as dist/bench/engine.js. */
const REPO = resolve(dirname(SELF), '..', '..');
const SHARED_MODELS = resolve(REPO, '..', 'shared', 'golden', 'models');
const SIZES = [32, 128, 512] as const;
const MB = 1e6;

// ---- the two checkpoints --------------------------------------------------------------------------------

type Init = 'normal' | 'ones' | 'zeros';
interface TensorSpec {
  name: string;
  shape: number[];
  init: Init;
}

interface ModelSpec {
  key: 'bert' | 'gpt2';
  label: string;
  /** Folder in ../shared/golden/models whose tokenizer.json / tokenizer_config.json are copied. */
  tokenizerFrom: string;
  config: Record<string, unknown>;
  tensors: () => TensorSpec[];
  /** PyTorch eager, returning attentions and q/k, at 32, 128, 512 tokens on this machine kind (ms). */
  pytorch: readonly [number, number, number];
}

const normal = (name: string, shape: number[]): TensorSpec => ({ name, shape, init: 'normal' });
const layerNorm = (prefix: string, D: number, names = ['weight', 'bias']): TensorSpec[] => [
  { name: `${prefix}.${names[0]}`, shape: [D], init: 'ones' },
  { name: `${prefix}.${names[1]}`, shape: [D], init: 'zeros' },
];

/** bert-base-uncased's encoder (the tensors src/graph/bert.ts reads; no pooler or MLM head). nn.Linear is [out, in]. */
const BERT: ModelSpec = {
  key: 'bert',
  label: 'BERT-base',
  tokenizerFrom: 'bert-tiny',
  pytorch: [64, 146, 540],
  config: {
    architectures: ['BertModel'],
    model_type: 'bert',
    hidden_size: 768,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    intermediate_size: 3072,
    hidden_act: 'gelu',
    max_position_embeddings: 512,
    type_vocab_size: 2,
    vocab_size: 30522,
    layer_norm_eps: 1e-12,
    initializer_range: 0.02,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
    torch_dtype: 'float32',
  },
  tensors() {
    const D = 768,
      F = 3072,
      e = 'bert.embeddings';
    const out: TensorSpec[] = [
      normal(`${e}.word_embeddings.weight`, [30522, D]),
      normal(`${e}.position_embeddings.weight`, [512, D]),
      normal(`${e}.token_type_embeddings.weight`, [2, D]),
      ...layerNorm(`${e}.LayerNorm`, D),
    ];
    for (let i = 0; i < 12; i++) {
      const l = `bert.encoder.layer.${i}`;
      for (const p of ['query', 'key', 'value'])
        out.push(normal(`${l}.attention.self.${p}.weight`, [D, D]), normal(`${l}.attention.self.${p}.bias`, [D]));
      out.push(
        normal(`${l}.attention.output.dense.weight`, [D, D]),
        normal(`${l}.attention.output.dense.bias`, [D]),
        ...layerNorm(`${l}.attention.output.LayerNorm`, D),
      );
      out.push(normal(`${l}.intermediate.dense.weight`, [F, D]), normal(`${l}.intermediate.dense.bias`, [F]));
      out.push(
        normal(`${l}.output.dense.weight`, [D, F]),
        normal(`${l}.output.dense.bias`, [D]),
        ...layerNorm(`${l}.output.LayerNorm`, D),
      );
    }
    return out;
  },
};

/** GPT-2 small (openai-community/gpt2's names, no `transformer.` prefix). Conv1D is [in, out]. */
const GPT2: ModelSpec = {
  key: 'gpt2',
  label: 'GPT-2 small',
  tokenizerFrom: 'gpt2-tiny',
  pytorch: [75, 145, 541],
  config: {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    n_positions: 1024,
    n_ctx: 1024,
    vocab_size: 50257,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    bos_token_id: 50256,
    eos_token_id: 50256,
    torch_dtype: 'float32',
  },
  tensors() {
    const D = 768,
      F = 3072;
    const out: TensorSpec[] = [normal('wte.weight', [50257, D]), normal('wpe.weight', [1024, D])];
    for (let i = 0; i < 12; i++) {
      const l = `h.${i}`;
      out.push(...layerNorm(`${l}.ln_1`, D));
      out.push(normal(`${l}.attn.c_attn.weight`, [D, 3 * D]), normal(`${l}.attn.c_attn.bias`, [3 * D]));
      out.push(normal(`${l}.attn.c_proj.weight`, [D, D]), normal(`${l}.attn.c_proj.bias`, [D]));
      out.push(...layerNorm(`${l}.ln_2`, D));
      out.push(normal(`${l}.mlp.c_fc.weight`, [D, F]), normal(`${l}.mlp.c_fc.bias`, [F]));
      out.push(normal(`${l}.mlp.c_proj.weight`, [F, D]), normal(`${l}.mlp.c_proj.bias`, [D]));
    }
    out.push(...layerNorm('ln_f', D));
    return out;
  },
};

const SPECS = [BERT, GPT2];

// ---- writing a checkpoint (child process) ----------------------------------------------------------------

/** xorshift128 → N(0, std) by Box–Muller; deterministic per seed. */
function normalFiller(seed: number): (a: Float32Array, std: number) => void {
  let x = 123456789 ^ seed,
    y = 362436069,
    z = 521288629,
    w = 88675123 ^ (seed * 2654435761);
  const next = () => {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return w;
  };
  return (a, std) => {
    for (let i = 0; i < a.length; i += 2) {
      const r = std * Math.sqrt(-2 * Math.log((next() + 1) / 4294967297));
      const theta = (2 * Math.PI * next()) / 4294967296;
      a[i] = r * Math.cos(theta);
      if (i + 1 < a.length) a[i + 1] = r * Math.sin(theta);
    }
  };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
}

/**
 * Writes `model.safetensors` + config.json + the tokenizer files into `dir`. The safetensors file is
 * streamed tensor by tensor in 4 MB chunks (a temporary name, then a rename), never built in memory.
 */
function writeCheckpoint(spec: ModelSpec, dir: string): GenResult {
  const t0 = performance.now();
  const tensors = spec.tensors();
  const header = safetensorsHeader(
    tensors.map((t) => ({ ...t, dtype: 'F32' as const })),
    { format: 'pt' },
  );

  const path = join(dir, 'model.safetensors');
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, header.bytes);
    const fill = normalFiller(spec.key === 'bert' ? 1 : 2);
    const chunk = new Float32Array(1 << 20);
    for (const t of tensors) {
      for (let left = t.shape.reduce((a, b) => a * b, 1); left > 0; ) {
        const part = chunk.subarray(0, Math.min(left, chunk.length));
        if (t.init === 'normal') fill(part, 0.02);
        else part.fill(t.init === 'ones' ? 1 : 0);
        writeAll(fd, new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
        left -= part.length;
      }
    }
    // Flushed now, so that the kernel's write-back of ~0.5 GB does not compete with the measurements that follow.
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);

  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(spec.config, null, 2)}\n`);
  const from = join(SHARED_MODELS, spec.tokenizerFrom);
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(from, 'tokenizer.json')));
  // The tiny models' tokenizer_config.json is kept, with model_max_length set to this model's positions.
  const tokenizerConfig = JSON.parse(readFileSync(join(from, 'tokenizer_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  tokenizerConfig.model_max_length = spec.key === 'bert' ? 512 : 1024;
  writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfig, null, 2)}\n`);
  return { bytes: header.dataBytes, tensors: tensors.length, seconds: (performance.now() - t0) / 1000 };
}

// ---- memory ----------------------------------------------------------------------------------------------

/** Fields of /proc/self/status in bytes (VmRSS, VmHWM, RssAnon, RssFile, …); empty off Linux. */
function procStatus(): Record<string, number> {
  const out: Record<string, number> = {};
  if (!existsSync('/proc/self/status')) return out;
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

/** Current RSS (Linux /proc, else process.memoryUsage). */
function rss(): number {
  return procStatus().VmRSS ?? process.memoryUsage().rss;
}

/** Peak RSS since start or the last resetPeak (VmHWM). */
function peakRss(): number | null {
  return procStatus().VmHWM ?? null;
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0: "5" to /proc/self/clear_refs); false if not possible. */
function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * CPU clock ticks (Linux /proc): the whole machine busy, and this process with its finished children (the
 * benchmark's children are all waited for), for telling how much other work shared the machine; null off Linux.
 */
interface CpuTicks {
  machineBusy: number;
  ours: number;
  at: number;
}

function cpuTicks(): CpuTicks | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = cpu;
    const self = readFileSync('/proc/self/stat', 'utf8');
    const fields = self
      .slice(self.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number); // fields[0] is field 3 (state)
    const [utime, stime, cutime, cstime] = fields.slice(11, 15);
    return {
      machineBusy: user + nice + system + irq + softirq + (steal || 0),
      ours: utime + stime + cutime + cstime,
      at: performance.now(),
    };
  } catch {
    return null;
  }
}

/** Share of the machine's CPU time (all cores) that other processes used between two readings. */
function otherCpuShare(a: CpuTicks, b: CpuTicks, cores: number): number {
  const ticksPerSecond = 100; // USER_HZ on Linux
  const available = ((b.at - a.at) / 1000) * ticksPerSecond * cores;
  return Math.max(0, (b.machineBusy - a.machineBusy - (b.ours - a.ours)) / available);
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

// ---- what the machine can do -----------------------------------------------------------------------------

/** Floating-point operations of one forward pass of the 12-layer, 768-wide models at T tokens (matmuls only). */
function forwardFlops(T: number, layers = 12, D = 768, F = 3072): number {
  const projections = 4 * D * D + 2 * D * F; // q, k, v, output; FFN in and out (multiply-adds per token)
  return layers * (2 * T * projections + 2 * 2 * T * T * D); // + q·kᵀ and probs·v
}

interface GemmResult {
  M: number;
  K: number;
  N: number;
  medianGflops: number;
  bestGflops: number;
}

/**
 * onnxruntime's own float32 Gemm on the shape that dominates the models at 128 tokens (x[128, 768] · W[3072, 768]ᵀ,
 * the FFN input projection, weight a constant initializer so it is prepacked like the real ones): in practice a
 * ceiling for the whole forward pass, whose time is almost all in such matmuls.
 */
async function gemmCeiling(threads: number | null): Promise<GemmResult> {
  const { default: ort } = await import('onnxruntime-node');
  const { default: onnxProto } = await import('onnx-proto');
  const { onnx } = onnxProto;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const [M, K, N] = [128, 768, 3072];
  const w = new Float32Array(K * N);
  normalFiller(3)(w, 0.02);
  const info = (name: string, dims: (number | string)[]) => ({
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
  const graph = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'attnviz-bench',
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'gemm',
        node: [
          {
            opType: 'Gemm',
            name: 'gemm',
            input: ['x', 'w'],
            output: ['y'],
            attribute: [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
          },
        ],
        initializer: [{ name: 'w', dims: [N, K], dataType: FLOAT, rawData: new Uint8Array(w.buffer) }],
        input: [info('x', ['M', K])],
        output: [info('y', ['M', N])],
      },
    }),
  ).finish();
  const session = await ort.InferenceSession.create(graph, {
    graphOptimizationLevel: 'all',
    ...(threads ? { intraOpNumThreads: threads } : {}),
  });
  const x = new Float32Array(M * K);
  normalFiller(4)(x, 1);
  const feeds = { x: new ort.Tensor('float32', x, [M, K]) };
  for (let i = 0; i < 10; i++) await session.run(feeds);
  const ts: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t = performance.now();
    await session.run(feeds);
    ts.push(performance.now() - t);
  }
  await session.release();
  const flops = 2 * M * K * N;
  return { M, K, N, medianGflops: flops / median(ts) / 1e6, bestGflops: flops / Math.min(...ts) / 1e6 };
}

// ---- children --------------------------------------------------------------------------------------------

interface GenResult {
  bytes: number;
  tensors: number;
  seconds: number;
}

interface MemResult {
  extract: boolean;
  weightBytes: number;
  loadMs: number;
  baselineRss: number;
  peakRss: number | null;
  rssAfter: number;
  rssAnon: number | null;
  rssFile: number | null;
}

interface SizeResult {
  target: number;
  T: number;
  extractMs: number[];
  plainMs: number[];
}

interface TimeResult {
  weightBytes: number;
  threads: number | null;
  loadExtractMs: number;
  loadPlainMs: number;
  rssLoaded: number;
  sizes: SizeResult[];
  /** One extraction at the largest size: RSS just before, and VmHWM reset to it, read after. */
  peak512: { rssBefore: number; peak: number | null; peakIsLifetime: boolean; outputBytes: number } | null;
}

interface ChildArgs {
  mode: 'gen' | 'mem' | 'time' | 'gemm';
  model: 'bert' | 'gpt2';
  dir: string;
  extract: boolean;
  threads: number | null;
  warmup: number;
  runs: number;
}

async function child(args: ChildArgs): Promise<unknown> {
  const spec = SPECS.find((s) => s.key === args.model)!;
  if (args.mode === 'gen') return writeCheckpoint(spec, args.dir);
  if (args.mode === 'gemm') return gemmCeiling(args.threads);

  const { Model } = await import('../src/models/checkpoint-model.js');
  const options = { extract: args.extract, threads: args.threads ?? undefined, progress: false };

  if (args.mode === 'mem') {
    gc();
    const baselineRss = rss();
    resetPeak();
    const t0 = performance.now();
    const model = await Model.load(args.dir, options);
    const loadMs = performance.now() - t0;
    const s = procStatus();
    const result: MemResult = {
      extract: args.extract,
      weightBytes: model.weightBytes,
      loadMs,
      baselineRss,
      peakRss: s.VmHWM ?? null,
      rssAfter: s.VmRSS ?? process.memoryUsage().rss,
      rssAnon: s.RssAnon ?? null,
      rssFile: s.RssFile ?? null,
    };
    await model.release();
    return result;
  }

  // Timing: the extracting and the plain model side by side, runs interleaved so that both see the same machine.
  let t0 = performance.now();
  const extract = await Model.load(args.dir, { ...options, extract: true });
  const loadExtractMs = performance.now() - t0;
  t0 = performance.now();
  const plain = await Model.load(args.dir, { ...options, extract: false });
  const loadPlainMs = performance.now() - t0;
  gc();
  const rssLoaded = rss();

  const sizes: SizeResult[] = [];
  const texts: string[] = [];
  for (const target of SIZES) {
    const text = exactText((s) => extract.tokenizer.encode(s).ids.length, target);
    texts.push(text);
    const T = extract.tokenizer.encode(text).ids.length;
    await sanityCheck(extract, plain, text, T);

    const timed = async (run: () => Promise<unknown>) => {
      gc();
      const s = performance.now();
      await run();
      return performance.now() - s;
    };
    const runExtract = () => extract.attention(text);
    const runPlain = () => plain.forward(text);
    for (let i = 0; i < args.warmup; i++) {
      await timed(runExtract);
      await timed(runPlain);
    }
    const result: SizeResult = { target, T, extractMs: [], plainMs: [] };
    for (let i = 0; i < args.runs; i++) {
      // Alternate which goes first, so neither always follows the other.
      if (i % 2 === 0) {
        result.extractMs.push(await timed(runExtract));
        result.plainMs.push(await timed(runPlain));
      } else {
        result.plainMs.push(await timed(runPlain));
        result.extractMs.push(await timed(runExtract));
      }
    }
    sizes.push(result);
  }

  // Peak RSS during one extraction at the largest size (both models stay loaded).
  gc();
  const rssBefore = rss();
  const reset = resetPeak();
  const last = await extract.attention(texts[texts.length - 1]);
  const peak = peakRss();
  const outputBytes = [last.attention, last.query, last.key, last.hiddenLast].reduce(
    (n, t) => n + (t?.data.byteLength ?? 0),
    0,
  );

  await extract.release();
  await plain.release();
  const result: TimeResult = {
    weightBytes: extract.weightBytes,
    threads: args.threads,
    loadExtractMs,
    loadPlainMs,
    rssLoaded,
    sizes,
    peak512: { rssBefore, peak, peakIsLifetime: !reset, outputBytes },
  };
  return result;
}

/** The outputs have the expected shapes and an attention row is a distribution (before anything is timed). */
async function sanityCheck(extract: CheckpointModel, plain: CheckpointModel, text: string, T: number): Promise<void> {
  const a = await extract.attention(text);
  const [L, H, T1, T2] = a.attention.dims;
  if (L !== 12 || H !== 12 || T1 !== T || T2 !== T)
    throw new Error(`attention dims [${a.attention.dims.join(', ')}] at T = ${T}`);
  const rowSum = a.attention.data.subarray(0, T).reduce((x, y) => x + y, 0);
  if (!(Math.abs(rowSum - 1) < 1e-3)) throw new Error(`attention row sums to ${rowSum}`);
  if ((await plain.forward(text)).dims[0] !== T)
    throw new Error(`forward: T = ${T} tokens in, [${(await plain.forward(text)).dims.join(', ')}] out`);
}

/** The child running now, stopped if the benchmark is interrupted. */
let running: ChildProcess | null = null;

/** Runs one child process (this file, fresh Node, same flags) and returns the result it sends back. */
function runChild<T>(args: ChildArgs): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const proc = fork(SELF, ['--child', JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    running = proc;
    let result: { ok: true; value: T } | { ok: false; error: string } | undefined;
    proc.on('message', (m) => {
      result = m as typeof result;
    });
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      running = null;
      if (result?.ok) resolvePromise(result.value);
      else
        reject(
          new Error(
            `${args.mode} ${args.model}: ${result && !result.ok ? result.error : `child exited with ${signal ?? code}`}`,
          ),
        );
    });
  });
}

// ---- statistics and printing -----------------------------------------------------------------------------

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const min = (xs: readonly number[]) => Math.min(...xs);
/** Median of run-by-run ratios (extract run i over the plain run beside it): steadier than medians when the load drifts. */
const pairedRatio = (s: SizeResult) => median(s.extractMs.map((e, i) => e / s.plainMs[i]));
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const mb = (x: number) => `${(x / MB).toFixed(0)} MB`;
const times = (x: number) => `${x.toFixed(2)}×`;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

function ortVersion(): string {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node'));
    for (; dir !== dirname(dir); dir = dirname(dir)) {
      const p = join(dir, 'package.json');
      if (existsSync(p)) {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'onnxruntime-node') return pkg.version ?? '?';
      }
    }
  } catch {
    /* fall through */
  }
  return 'unknown';
}

interface Options {
  quick: boolean;
  runs: number;
  warmup: number;
  threads: number | null;
  models: ModelSpec[];
  json: string | null;
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    if (i < 0) return null;
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  const int = (flag: string, fallback: number | null) => {
    const v = value(flag);
    if (v === null) return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag}: not a count: ${v}`);
    return n;
  };
  const model = value('--model');
  if (model !== null && !SPECS.some((s) => s.key === model)) throw new Error(`--model: bert or gpt2, not ${model}`);
  return {
    quick,
    runs: Math.max(1, int('--runs', quick ? 3 : 7)!),
    warmup: int('--warmup', quick ? 1 : 2)!,
    threads: int('--threads', null) || null,
    models: SPECS.filter((s) => model === null || s.key === model),
    json: value('--json'),
  };
}

interface ModelReport {
  spec: ModelSpec;
  gen: GenResult;
  memExtract: MemResult;
  memPlain: MemResult;
  time: TimeResult;
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`bench/engine: ${(e as Error).message}`);
    process.exitCode = 2;
    return;
  }
  if (!SPECS.every((s) => existsSync(join(SHARED_MODELS, s.tokenizerFrom, 'tokenizer.json')))) {
    console.log(
      `bench/engine: skipped: the tokenizers come from ${SHARED_MODELS}/{bert,gpt2}-tiny, which is absent (clone ../shared beside the repository).`,
    );
    return;
  }
  if (!(globalThis as { gc?: unknown }).gc)
    console.log(
      'note: run with node --expose-gc (npm run bench does) so that garbage collection stays out of the timed runs',
    );

  const cpus = os.cpus();
  const machine = {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memory: os.totalmem(),
    node: process.version,
    ort: ortVersion(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    load: os.loadavg(),
  };
  console.log(`attnviz engine benchmark${options.quick ? ' (--quick)' : ''}`);
  console.log(
    `machine: ${machine.cpu}, ${machine.cores} cores, ${(machine.memory / 2 ** 30).toFixed(1)} GiB, ${machine.os}`,
  );
  console.log(
    `node ${machine.node}, onnxruntime-node ${machine.ort}, threads: ${options.threads ?? 'onnxruntime default'}`,
  );
  console.log(`load average at start: ${machine.load.map((x) => x.toFixed(2)).join(', ')}`);
  console.log(
    `runs: ${options.warmup} warm-up + ${options.runs} timed per size and mode (extract / plain interleaved)\n`,
  );

  const startTicks = cpuTicks();
  const tmp = await mkdtemp(join(os.tmpdir(), 'attnviz-bench-'));
  const cleanup = () => rmSync(tmp, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    running?.kill('SIGKILL');
    cleanup();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const reports: ModelReport[] = [];
  let gemm: GemmResult | null = null;
  try {
    gemm = await runChild<GemmResult>({
      mode: 'gemm',
      model: 'bert',
      dir: tmp,
      extract: false,
      threads: options.threads,
      warmup: 0,
      runs: 0,
    });
    console.log(
      `onnxruntime float32 Gemm ${gemm.M}×${gemm.K}·(${gemm.N}×${gemm.K})ᵀ: ${gemm.medianGflops.toFixed(0)} GFLOP/s median, ${gemm.bestGflops.toFixed(0)} best\n`,
    );
    for (const spec of options.models) {
      const dir = join(tmp, spec.key);
      await mkdir(dir);
      const base = { model: spec.key, dir, threads: options.threads, warmup: options.warmup, runs: options.runs };
      process.stdout.write(`${spec.label}: writing checkpoint… `);
      const gen = await runChild<GenResult>({ ...base, mode: 'gen', extract: true });
      process.stdout.write(`${mb(gen.bytes)}, ${gen.tensors} tensors, ${gen.seconds.toFixed(1)} s; loading (memory)… `);
      const memExtract = await runChild<MemResult>({ ...base, mode: 'mem', extract: true });
      const memPlain = await runChild<MemResult>({ ...base, mode: 'mem', extract: false });
      process.stdout.write('timing… ');
      const time = await runChild<TimeResult>({ ...base, mode: 'time', extract: true });
      console.log('done');
      reports.push({ spec, gen, memExtract, memPlain, time });
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  console.log(`\n${report(reports, machine.cores, gemm)}`);
  const loadAtEnd = os.loadavg();
  const others =
    cpuTicks() === null || startTicks === null ? null : otherCpuShare(startTicks, cpuTicks()!, machine.cores);
  console.log(`\nload average at the end: ${loadAtEnd.map((x) => x.toFixed(2)).join(', ')}`);
  if (others !== null)
    console.log(`other processes used ${(100 * others).toFixed(0)}% of the machine's CPU time during the run`);
  if ((others !== null && others > 0.1) || (gemm && gemm.medianGflops < 0.7 * gemm.bestGflops)) {
    console.log(
      'warning: the machine was busy with other work (others above 10% of the CPU, or the Gemm median far below its best): the times are noisy; rerun on an idle machine.',
    );
  }
  if (options.json) {
    const raw = {
      machine,
      loadAtEnd,
      otherCpuShare: others,
      gemm,
      options: { ...options, models: options.models.map((m) => m.key) },
      reports: reports.map((r) => ({ ...r, spec: r.spec.key })),
    };
    writeFileSync(options.json, `${JSON.stringify(raw, null, 2)}\n`);
  }
}

function report(reports: ModelReport[], cores: number, gemm: GemmResult | null): string {
  const out: string[] = [];

  out.push(
    'Extraction (`attention`) vs plain forward pass (`forward`, loaded with extract: false), same weights, same process, ms',
  );
  const rows = [
    [
      'model',
      'T',
      'extract median (min)',
      'plain median (min)',
      'ratio: medians (paired)',
      'GFLOP/s extract (plain)',
      'PyTorch eager',
      'extract / PyTorch',
    ],
  ];
  for (const { spec, time } of reports) {
    time.sizes.forEach((s, i) => {
      const e = median(s.extractMs),
        p = median(s.plainMs);
      const rate = (t: number) => (forwardFlops(s.T) / t / 1e6).toFixed(0);
      rows.push([
        spec.label,
        String(s.T),
        `${ms(e)} (${ms(min(s.extractMs))})`,
        `${ms(p)} (${ms(min(s.plainMs))})`,
        `${times(e / p)} (${times(pairedRatio(s))})`,
        `${rate(e)} (${rate(p)})`,
        String(spec.pytorch[i]),
        times(e / spec.pytorch[i]),
      ]);
    });
  }
  out.push(table(rows));
  out.push(
    'ratio: median extract over median plain; paired: the median of the run-by-run ratios of adjacent extract and plain runs.',
  );
  out.push(
    `GFLOP/s: the matmul work of the forward pass (${(forwardFlops(128) / 1e9).toFixed(1)} GFLOP at 128 tokens) over the median time.`,
  );
  if (gemm) {
    out.push(
      `onnxruntime's float32 Gemm alone reaches ${gemm.medianGflops.toFixed(0)} GFLOP/s median, ${gemm.bestGflops.toFixed(0)} best, on this machine: even at that best`,
      `rate the matmuls of one pass at 128 tokens take ${ms(forwardFlops(128) / gemm.bestGflops / 1e6)} ms (${ms(forwardFlops(128) / 0.11 / 1e9)} GFLOP/s would be needed for 110 ms).`,
    );
  }
  out.push('');

  out.push('Load (`Model.load` wall time; warm page cache) and memory');
  const memRows = [
    [
      'model',
      'weights',
      'load extract',
      'load plain',
      'load, fresh process',
      'peak RSS in load',
      'peak − baseline',
      'RSS after (anon + file)',
      'peak RSS, extract @512',
    ],
  ];
  for (const { spec, memExtract: m, memPlain: mp, time } of reports) {
    const w = m.weightBytes;
    const p = time.peak512;
    memRows.push([
      spec.label,
      mb(w),
      `${ms(time.loadExtractMs)} ms`,
      `${ms(time.loadPlainMs)} ms`,
      `${ms(m.loadMs)} / ${ms(mp.loadMs)} ms`,
      m.peakRss === null
        ? 'n/a'
        : `${mb(m.peakRss)} = ${times(m.peakRss / w)} (plain ${mp.peakRss === null ? 'n/a' : times(mp.peakRss / w)})`,
      m.peakRss === null ? 'n/a' : `${times((m.peakRss - m.baselineRss) / w)} (baseline ${mb(m.baselineRss)})`,
      `${mb(m.rssAfter)} (${m.rssAnon === null ? '?' : mb(m.rssAnon)} + ${m.rssFile === null ? '?' : mb(m.rssFile)})`,
      p?.peak == null
        ? 'n/a'
        : `${mb(p.peak)} (+${mb(p.peak - p.rssBefore)} over ${mb(p.rssBefore)})${p.peakIsLifetime ? ' lifetime peak' : ''}`,
    ]);
  }
  out.push(table(memRows));
  out.push(
    'load, fresh process: extract / plain, each alone in a new process (the memory children). peak RSS in load: VmHWM of that',
  );
  out.push(
    'process after Model.load (extract: true), as a multiple of the weight bytes. peak RSS, extract @512: the timing process',
  );
  out.push(
    `(both models loaded) during one extraction at 512 tokens; it returns ${reports.map((r) => `${mb(r.time.peak512?.outputBytes ?? 0)} (${r.spec.label})`).join(', ')} of outputs.`,
    '',
  );

  out.push('Targets');
  const check = (ok: boolean) => (ok ? 'met' : 'NOT met');
  for (const { spec, time, memExtract } of reports) {
    const at128 = time.sizes.find((s) => s.target === 128);
    if (at128) {
      const ratio = median(at128.extractMs) / median(at128.plainMs);
      out.push(
        `- ${spec.label}: extraction ≤ 1.3× the plain pass at 128 tokens: ${times(ratio)} (paired ${times(pairedRatio(at128))}) — ${check(ratio <= 1.3)}`,
      );
      if (spec.key === 'bert') {
        const e = median(at128.extractMs);
        out.push(`- ${spec.label} at 128 tokens ≤ 110 ms (${cores}-core machine): ${ms(e)} ms — ${check(e <= 110)}`);
      }
    }
    if (memExtract.peakRss !== null) {
      const r = memExtract.peakRss / memExtract.weightBytes;
      out.push(
        `- ${spec.label}: peak memory during load ≤ 2.5× the weight bytes: ${times(r)} (${times((memExtract.peakRss - memExtract.baselineRss) / memExtract.weightBytes)} above the baseline) — ${check(r <= 2.5)}`,
      );
    } else {
      out.push(`- ${spec.label}: peak memory during load: not measured (no /proc/self/status)`);
    }
  }
  return out.join('\n');
}

// ---- entry -----------------------------------------------------------------------------------------------

if (process.argv[2] === '--child') {
  const args = JSON.parse(process.argv[3]) as ChildArgs;
  child(args).then(
    (value) => process.send!({ ok: true, value }, () => process.disconnect()),
    (e: Error) => process.send!({ ok: false, error: e.stack ?? String(e) }, () => process.disconnect()),
  );
} else {
  main().catch((e: Error) => {
    console.error(`bench/engine: ${e.stack ?? e}`);
    process.exit(1);
  });
}
