/**
 * Engine benchmark (prints figures; not a test). Generates random BERT-base-size and GPT-2-small-size
 * checkpoints in Hugging Face layout under a fresh temporary folder, then reports for each:
 *
 * - load time: `Model.load` wall time, with the extra outputs (`extract: true`) and without (`extract: false`);
 * - extraction time (`model.attention(text)`, fresh result arrays; and `attention(text, { reuse: true })`,
 *   arrays kept across calls; and fresh back to back: the second of two calls with no GC between them) at exactly
 *   32, 128 and 512 tokens, and in the same process, interleaved run by
 *   run, a plain forward pass of the same weights without the extra outputs (`Model.load(dir, { extract:
 *   false })` then `forward(text)`), and their ratio;
 * - a peer: the same checkpoint and token ids in PyTorch eager (bench/pytorch_peer.py, Debian's python3-torch
 *   with OpenBLAS-OpenMP, as many threads as onnxruntime), interleaved with the runs above in a child
 *   process of its own, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset so OpenBLAS picks its best kernel
 *   (printed); its attention is compared with attnviz's. Skipped, with a note, when python3-torch is absent;
 * - load time against reading the weight file from a warm page cache;
 * - peak memory during load, measured in a fresh child process that does nothing but load (VmHWM from
 *   /proc/self/status), as a multiple of `model.weightBytes`; and the peak RSS of the timing process during
 *   one extraction at 512 tokens.
 *
 *   npm run bench                      # = node --expose-gc dist/bench/engine.js
 *   node --expose-gc dist/bench/engine.js --quick          # smoke run: fewer runs
 *   options: --quick  --runs N  --warmup N  --threads N  --model bert|gpt2  --json FILE  --no-pytorch
 *
 * Processes: this one only orchestrates. One child writes each checkpoint (streamed tensor by tensor, so
 * the generator's memory never pollutes a measurement), fresh children load it to measure memory, and one
 * more child per model does the timing. Tokenizers come from ../shared/golden/models/{bert,gpt2}-tiny beside
 * the repository (real bert-base-uncased and gpt2 vocabularies); without ../shared the benchmark says so and
 * exits 0.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, statSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Model as CheckpointModel } from '../src/models/checkpoint-model.js';
import { type GenResult, type ModelSpec, normalFiller, SHARED_MODELS, SPECS, writeCheckpoint } from './checkpoints.js';
import { DirectSession } from '../src/runtime/ort-direct.js';
import { threadCount } from '../src/runtime/session.js';
import { exactText } from './texts.js';

const SELF = fileURLToPath(import.meta.url);
/** The repository root: this file runs as dist/bench/engine.js. */
const REPO = resolve(dirname(SELF), '..', '..');
const SIZES = [32, 128, 512] as const;
const MB = 1e6;

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

/** The threads this process has now (Linux /proc/self/status), or null. */
function threadsNow(): number | null {
  const m = existsSync('/proc/self/status')
    ? /^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))
    : null;
  return m ? Number(m[1]) : null;
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
    intraOpNumThreads: threadCount({ threads: threads ?? undefined }),
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

// ---- the PyTorch peer -------------------------------------------------------------------------------------

const PYTHON = '/usr/bin/python3';
const PEER = resolve(REPO, 'bench', 'pytorch_peer.py');

/** The peer's environment: ours without the OpenBLAS overrides, so that OpenBLAS picks its own kernel. */
function peerEnv(): NodeJS.ProcessEnv {
  const { OPENBLAS_CORETYPE: _core, OPENBLAS_L2_SIZE: _l2, ...env } = process.env;
  return env;
}

/** Why the PyTorch column is skipped, or null when Debian's python3-torch imports. */
function peerMissing(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} is absent`;
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { env: peerEnv(), encoding: 'utf8' });
  return r.status === 0 ? null : `python3-torch does not import (${r.stderr.trim().split('\n').pop()})`;
}

interface PeerInfo {
  torch: string;
  threads: number;
  openblas: { library: string; core: string; config: string; parallel: string } | null;
  env: Record<string, string | null>;
}

/** bench/pytorch_peer.py as a child: one JSON request per line, one reply per line. */
class PytorchPeer {
  private readonly replies: ((line: string) => void)[] = [];

  private constructor(private readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (line) => this.replies.shift()?.(line));
  }

  static start(): PytorchPeer {
    return new PytorchPeer(spawn(PYTHON, [PEER], { env: peerEnv(), stdio: ['pipe', 'pipe', 'inherit'] }));
  }

  async request<T>(req: Record<string, unknown>): Promise<T> {
    const reply = new Promise<string>((r) => this.replies.push(r));
    this.proc.stdin!.write(`${JSON.stringify(req)}\n`);
    const value = JSON.parse(await reply) as T & { error?: string };
    if (value.error) throw new Error(`pytorch peer: ${value.error}`);
    return value;
  }

  stop(): void {
    this.proc.stdin!.end();
  }
}

// ---- children --------------------------------------------------------------------------------------------

interface MemResult {
  extract: boolean;
  weightBytes: number;
  loadMs: number;
  /** Reading model.safetensors into memory, the file already in the page cache (best of 3). */
  readMs: number;
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
  /**
   * The second of two fresh attention() calls with no collection between them: the collection the first one's
   * arrays bring about (V8's external memory pressure, ort-direct.ts lentArray) runs during it, as in a loop.
   */
  loopMs: number[];
  reuseMs: number[];
  /** attention() with reuse on the same weights extracted layer by layer (staged: a session per layer). */
  stagedMs: number[];
  plainMs: number[];
  /** PyTorch eager's forward with attentions (timed inside the peer), when it ran. */
  pytorchMs: number[] | null;
  /** Largest |attnviz − PyTorch| over the attention probabilities. */
  pytorchDiff: number | null;
}

interface StreamResult {
  rssBefore: number;
  peak: number | null;
  ms: number;
  fileBytes: number;
}

interface TimeResult {
  weightBytes: number;
  threads: number | null;
  /** The intra-op threads each session got (threadCount), and the threads the process had once loaded. */
  sessionThreads: number;
  processThreads: number | null;
  peer: PeerInfo | null;
  loadExtractMs: number;
  loadPlainMs: number;
  rssLoaded: number;
  sizes: SizeResult[];
  /** One extraction at the largest size: RSS just before, and VmHWM reset to it, read after. */
  peak512: { rssBefore: number; peak: number | null; peakIsLifetime: boolean; outputBytes: number } | null;
  /** `attnviz extract`'s path at the largest size: writeAttentionStream (F16) with RSS before and its peak. */
  stream512: StreamResult;
  /** The same on the model extracting layer by layer (staged), whose stream holds one layer at a time. */
  stagedStream512: StreamResult;
}

interface ChildArgs {
  mode: 'gen' | 'mem' | 'time' | 'gemm';
  model: 'bert' | 'gpt2';
  dir: string;
  extract: boolean;
  threads: number | null;
  warmup: number;
  runs: number;
  pytorch: boolean;
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
    let readMs = Infinity;
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      readFileSync(join(args.dir, 'model.safetensors'));
      readMs = Math.min(readMs, performance.now() - t);
    }
    const result: MemResult = {
      extract: args.extract,
      weightBytes: model.weightBytes,
      loadMs,
      readMs,
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
  // The default for these two models is one session (their outputs fit 1 GB); the per-layer kind beside it.
  const staged = await Model.load(args.dir, { ...options, extract: true, staged: true });
  gc();
  const rssLoaded = rss();
  const processThreads = threadsNow();
  const peer = args.pytorch ? PytorchPeer.start() : null;
  let peerInfo: PeerInfo | null = null;
  if (peer) {
    await peer.request({ cmd: 'load', kind: spec.key, dir: args.dir, threads: threadCount(options) });
    peerInfo = await peer.request<PeerInfo>({ cmd: 'info' });
  }

  const sizes: SizeResult[] = [];
  const texts: string[] = [];
  for (const target of SIZES) {
    const text = exactText((s) => extract.tokenizer.encode(s).ids.length, target);
    texts.push(text);
    const ids = extract.tokenizer.encode(text).ids;
    const T = ids.length;
    await sanityCheck(extract, plain, text, T);
    let pytorchDiff: number | null = null;
    if (peer) {
      const path = join(args.dir, `pytorch-${T}.f32`);
      await peer.request({ cmd: 'dump', ids, path });
      const theirs = new Float32Array(readFileSync(path).buffer.slice(0));
      rmSync(path);
      const ours = (await extract.attention(text)).attention.data;
      if (theirs.length !== ours.length)
        throw new Error(`pytorch attention: ${theirs.length} values, ours ${ours.length}`);
      pytorchDiff = 0;
      for (let i = 0; i < ours.length; i++) pytorchDiff = Math.max(pytorchDiff, Math.abs(ours[i] - theirs[i]));
    }

    const timed = async (run: () => Promise<unknown>) => {
      gc();
      const s = performance.now();
      await run();
      return performance.now() - s;
    };
    const modes: { run: () => Promise<number>; into: number[] }[] = [];
    const result: SizeResult = {
      target,
      T,
      extractMs: [],
      loopMs: [],
      reuseMs: [],
      stagedMs: [],
      plainMs: [],
      pytorchMs: null,
      pytorchDiff,
    };
    modes.push({ run: () => timed(() => extract.attention(text)), into: result.extractMs });
    modes.push({
      run: async () => {
        gc();
        await extract.attention(text);
        const s = performance.now();
        await extract.attention(text);
        return performance.now() - s;
      },
      into: result.loopMs,
    });
    modes.push({ run: () => timed(() => extract.attention(text, { reuse: true })), into: result.reuseMs });
    modes.push({ run: () => timed(() => staged.attention(text, { reuse: true })), into: result.stagedMs });
    modes.push({ run: () => timed(() => plain.forward(text)), into: result.plainMs });
    if (peer) {
      result.pytorchMs = [];
      modes.push({
        run: async () => (await peer.request<{ ms: number }>({ cmd: 'run', ids })).ms,
        into: result.pytorchMs,
      });
    }
    for (let i = 0; i < args.warmup; i++) for (const m of modes) await m.run();
    for (let i = 0; i < args.runs; i++) {
      // Rotate which goes first, so that none always follows another.
      for (let j = 0; j < modes.length; j++) {
        const m = modes[(i + j) % modes.length];
        m.into.push(await m.run());
      }
    }
    sizes.push(result);
  }
  peer?.stop();

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
  // And while streaming the same text into an attention file (F16), layer by layer, on each kind of model.
  const { writeAttentionStream } = await import('../src/core/files.js');
  const streamed = async (model: CheckpointModel): Promise<StreamResult> => {
    gc();
    const rssBefore = rss();
    resetPeak();
    const file = join(args.dir, 'stream.safetensors');
    const t = performance.now();
    await writeAttentionStream(file, model.stream(texts[texts.length - 1]), { dtype: 'F16' });
    const ms = performance.now() - t;
    const result = { rssBefore, peak: peakRss(), ms, fileBytes: statSync(file).size };
    rmSync(file);
    return result;
  };
  const stream = await streamed(extract);
  const stagedStream = await streamed(staged);

  await extract.release();
  await staged.release();
  await plain.release();
  const result: TimeResult = {
    weightBytes: extract.weightBytes,
    threads: args.threads,
    sessionThreads: threadCount(options),
    processThreads,
    peer: peerInfo,
    loadExtractMs,
    loadPlainMs,
    rssLoaded,
    sizes,
    peak512: { rssBefore, peak, peakIsLifetime: !reset, outputBytes },
    stream512: stream,
    stagedStream512: stagedStream,
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
            `${args.mode} ${args.model}: ` +
              `${result && !result.ok ? result.error : `child exited with ${signal ?? code}`}`,
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
/**
 * Median of run-by-run ratios (run i of one mode over run i of another): steadier than medians when the load drifts.
 */
const paired = (xs: readonly number[], ys: readonly number[]) => median(xs.map((x, i) => x / ys[i]));
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
  pytorch: boolean;
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
    pytorch: !argv.includes('--no-pytorch'),
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
      'bench/engine: skipped: the tokenizers come from ' +
        `${SHARED_MODELS}/{bert,gpt2}-tiny, which is absent (clone ../shared beside ` +
        'the repository).',
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
  const threads = threadCount({ threads: options.threads ?? undefined });
  const why = options.threads ? '--threads' : `os.availableParallelism() = ${os.availableParallelism()}`;
  console.log(
    `node ${machine.node}, onnxruntime-node ${machine.ort}, intra-op threads per session: ${threads} (${why})`,
  );
  console.log(
    `one-session extraction runs through ${
      DirectSession.available
        ? "onnxruntime's C API (koffi; outputs written in place, no copy)"
        : 'the onnxruntime-node binding (the C API did not load here: outputs copied by the binding)'
    }`,
  );
  const missing = options.pytorch ? peerMissing() : 'turned off (--no-pytorch)';
  if (missing) options.pytorch = false;
  console.log(
    missing
      ? `PyTorch peer: skipped: ${missing} (apt-get install python3-torch libopenblas0-openmp)`
      : `PyTorch peer: ${PEER} on ${PYTHON}, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for it`,
  );
  console.log(`load average at start: ${machine.load.map((x) => x.toFixed(2)).join(', ')}`);
  console.log(
    `runs: ${options.warmup} warm-up + ${options.runs} timed per size and ` +
      `mode (attention / reuse / plain / PyTorch interleaved)\n`,
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
      pytorch: false,
    });
    console.log(
      `onnxruntime float32 Gemm ${gemm.M}×${gemm.K}·(${gemm.N}×${gemm.K})ᵀ: ` +
        `${gemm.medianGflops.toFixed(0)} GFLOP/s median, ${gemm.bestGflops.toFixed(0)} best\n`,
    );
    for (const spec of options.models) {
      const dir = join(tmp, spec.key);
      await mkdir(dir);
      const base = {
        model: spec.key,
        dir,
        threads: options.threads,
        warmup: options.warmup,
        runs: options.runs,
        pytorch: options.pytorch,
      };
      process.stdout.write(`${spec.label}: writing checkpoint… `);
      const gen = await runChild<GenResult>({ ...base, mode: 'gen', extract: true });
      process.stdout.write(
        `${mb(gen.bytes)}, ${gen.tensors} tensors, ` + `${gen.seconds.toFixed(1)} s; loading (memory)… `,
      );
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

  console.log(`\n${report(reports, gemm)}`);
  const loadAtEnd = os.loadavg();
  const others =
    cpuTicks() === null || startTicks === null ? null : otherCpuShare(startTicks, cpuTicks()!, machine.cores);
  console.log(`\nload average at the end: ${loadAtEnd.map((x) => x.toFixed(2)).join(', ')}`);
  if (others !== null)
    console.log(`other processes used ${(100 * others).toFixed(0)}% of the machine's CPU time during the run`);
  if ((others !== null && others > 0.1) || (gemm && gemm.medianGflops < 0.7 * gemm.bestGflops)) {
    console.log(
      'warning: the machine was busy with other work (others above 10% of the CPU, or the Gemm ' +
        'median far below its best): the times are noisy; rerun on an idle machine.',
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

/** A streamed file's time, peak RSS over the RSS before, and size. */
function streamed(s: StreamResult): string {
  return s.peak === null ? 'n/a' : `${ms(s.ms)} ms, +${mb(s.peak - s.rssBefore)} peak, ${mb(s.fileBytes)} file`;
}

function report(reports: ModelReport[], gemm: GemmResult | null): string {
  const out: string[] = [];

  out.push(
    'Extraction (`attention`; with { reuse: true }) vs plain forward pass (`forward`, loaded ' +
      'with extract: false) and PyTorch eager, same weights and ids, interleaved, ms',
  );
  const rows = [
    [
      'model',
      'T',
      'attention median (min)',
      'reuse median (min)',
      'plain median (min)',
      'attention / plain (paired)',
      'back to back median (min)',
      'back to back / plain (paired)',
      'reuse / plain (paired)',
      'per-layer reuse median (min)',
      'per-layer reuse / plain (paired)',
      'PyTorch eager median (min)',
      'attention / PyTorch',
      'max |Δ| vs PyTorch',
    ],
  ];
  for (const { spec, time } of reports) {
    for (const s of time.sizes) {
      const e = median(s.extractMs),
        r = median(s.reuseMs),
        p = median(s.plainMs);
      const torch = s.pytorchMs ? median(s.pytorchMs) : null;
      rows.push([
        spec.label,
        String(s.T),
        `${ms(e)} (${ms(min(s.extractMs))})`,
        `${ms(r)} (${ms(min(s.reuseMs))})`,
        `${ms(p)} (${ms(min(s.plainMs))})`,
        `${times(e / p)} (${times(paired(s.extractMs, s.plainMs))})`,
        `${ms(median(s.loopMs))} (${ms(min(s.loopMs))})`,
        `${times(median(s.loopMs) / p)} (${times(paired(s.loopMs, s.plainMs))})`,
        `${times(r / p)} (${times(paired(s.reuseMs, s.plainMs))})`,
        `${ms(median(s.stagedMs))} (${ms(min(s.stagedMs))})`,
        `${times(median(s.stagedMs) / p)} (${times(paired(s.stagedMs, s.plainMs))})`,
        torch === null ? 'skipped' : `${ms(torch)} (${ms(min(s.pytorchMs!))})`,
        torch === null ? '—' : times(e / torch),
        s.pytorchDiff === null ? '—' : s.pytorchDiff.toExponential(1),
      ]);
    }
  }
  out.push(table(rows));
  out.push(
    'paired: the median of the run-by-run ratios of adjacent runs. back to back: the second of two fresh ' +
      'attention() calls with no GC between them (the collection the first brings about runs during it). ' +
      'attention and reuse: the default ' +
      'for these models, one session; per-layer: loaded with staged: true (a session per layer). PyTorch: its ' +
      "forward with every layer's probabilities kept, timed inside the peer.",
  );
  const t0 = reports[0]?.time;
  if (t0) {
    out.push(
      `Threads: ${t0.sessionThreads} intra-op threads per onnxruntime session; the timing ` +
        `process had ${t0.processThreads ?? '?'} threads with both models loaded.`,
    );
    const peer = t0.peer;
    const blas = peer?.openblas;
    const blasText = blas
      ? `${blas.core} kernel (${blas.parallel}; ${blas.library}; ${blas.config})`
      : 'not found in the process';
    if (peer)
      out.push(
        `PyTorch ${peer.torch}, ${peer.threads} threads (set to match), OpenBLAS: ` +
          `${blasText}; ` +
          `OPENBLAS_CORETYPE=${peer.env.OPENBLAS_CORETYPE ?? 'unset'}, ` +
          `OPENBLAS_L2_SIZE=${peer.env.OPENBLAS_L2_SIZE ?? 'unset'}.`,
      );
  }
  if (gemm) {
    out.push(
      `onnxruntime's float32 Gemm alone: ${gemm.medianGflops.toFixed(0)} GFLOP/s median, ` +
        `${gemm.bestGflops.toFixed(0)} best ` +
        `(${forwardFlops(128) / 1e9 > 0 ? (forwardFlops(128) / 1e9).toFixed(1) : '?'} GFLOP ` +
        'per pass at 128 tokens).',
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
      'read weights (warm)',
      'peak RSS in load',
      'peak − baseline',
      'RSS after (anon + file)',
      'peak RSS, extract @512',
      'stream to F16 file @512',
      'the same, per-layer',
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
      `${ms(m.readMs)} ms`,
      m.peakRss === null
        ? 'n/a'
        : `${mb(m.peakRss)} = ${times(m.peakRss / w)} (plain ${mp.peakRss === null ? 'n/a' : times(mp.peakRss / w)})`,
      m.peakRss === null ? 'n/a' : `${times((m.peakRss - m.baselineRss) / w)} (baseline ${mb(m.baselineRss)})`,
      `${mb(m.rssAfter)} (${m.rssAnon === null ? '?' : mb(m.rssAnon)} + ${m.rssFile === null ? '?' : mb(m.rssFile)})`,
      p?.peak == null
        ? 'n/a'
        : `${mb(p.peak)} (+${mb(p.peak - p.rssBefore)} over ` +
          `${mb(p.rssBefore)})${p.peakIsLifetime ? ' lifetime peak' : ''}`,
      streamed(time.stream512),
      streamed(time.stagedStream512),
    ]);
  }
  out.push(table(memRows));
  out.push(
    'load, fresh process: extract / plain, each alone in a new process ' +
      '(the memory children). peak RSS in load: VmHWM of that',
  );
  out.push(
    'process after Model.load (extract: true), as a multiple of the ' +
      'weight bytes. peak RSS, extract @512: the timing process',
  );
  out.push(
    '(both models loaded) during one extraction at 512 tokens; it returns ' +
      `${reports.map((r) => `${mb(r.time.peak512?.outputBytes ?? 0)} (${r.spec.label})`).join(', ')} ` +
      'of outputs.',
    '',
  );

  out.push('Targets');
  const check = (ok: boolean) => (ok ? 'met' : 'NOT met');
  for (const { spec, time, memExtract } of reports) {
    const at512 = time.sizes.find((s) => s.target === 512);
    if (at512) {
      const ratio = median(at512.extractMs) / median(at512.plainMs);
      const reuse = median(at512.reuseMs) / median(at512.plainMs);
      const staged = median(at512.stagedMs) / median(at512.plainMs);
      const loop = median(at512.loopMs) / median(at512.plainMs);
      out.push(
        `- ${spec.label}: attention() ≤ 1.15× the plain pass at 512 tokens: ` +
          `${times(ratio)} (paired ${times(paired(at512.extractMs, at512.plainMs))}) — ` +
          `${check(ratio <= 1.15)}; back to back: ${times(loop)} — ${check(loop <= 1.15)}; ` +
          `with reuse: ${times(reuse)} — ${check(reuse <= 1.15)} ` +
          `(per layer, with reuse: ${times(staged)} — ${check(staged <= 1.15)})`,
      );
    }
    const slower = time.sizes.filter((s) => s.pytorchMs && median(s.extractMs) > median(s.pytorchMs));
    if (time.sizes.every((s) => s.pytorchMs))
      out.push(
        `- ${spec.label}: attention() ≤ PyTorch eager at every length: ` +
          `${slower.length === 0 ? 'met' : `NOT met at ${slower.map((s) => s.T).join(', ')} tokens`}`,
      );
    out.push(
      `- ${spec.label}: loadModel ≤ 1.2× reading the weights from a warm page cache: ` +
        `${ms(memExtract.loadMs)} / ${ms(memExtract.readMs)} ms = ` +
        `${times(memExtract.loadMs / memExtract.readMs)} — ` +
        `${check(memExtract.loadMs <= 1.2 * memExtract.readMs)}`,
    );
    if (memExtract.peakRss !== null) {
      const r = memExtract.peakRss / memExtract.weightBytes;
      out.push(
        `- ${spec.label}: peak memory during load ≤ 2.5× the weight bytes: ` +
          `${times(r)} ` +
          `(${times((memExtract.peakRss - memExtract.baselineRss) / memExtract.weightBytes)} ` +
          `above the baseline) — ${check(r <= 2.5)}`,
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
