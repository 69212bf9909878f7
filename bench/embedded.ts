/**
 * The embedded model (USE lite) on three backends, side by side in one process (prints figures; not a test):
 * onnxruntime (the encoder rebuilt as an ONNX graph, graph/use-lite.ts: what attnviz runs; with its default
 * threads, the cores this process may use, and with one), and the TF.js graph
 * on TF.js's pure-JavaScript cpu backend (before) and on its WebAssembly backend (the other option of issue 13
 * item 4). `attention()` end to end — tokenizer, run, the padded q/k — at 8 and 128 tokens; targets ≤ 20 ms and
 * ≤ 60 ms. Each round runs every backend `--runs` times in turn (TF.js moves the weights when its backend
 * changes, so its two backends run in blocks, each after one unmeasured run); the tables give medians and
 * minima over all rounds, the largest differences from the cpu backend's values, and the load average.
 *
 * The wasm backend (@tensorflow/tfjs-backend-wasm 3.21, a dev dependency: its .wasm files ship in the npm package
 * and load from node_modules) has a kernel for every op of the graph but SparseToDense, registered here from
 * tfjs-backend-cpu's own scatter (the op builds the [1, T] id matrix: nothing to speed up).
 *
 * Then the start-up the switch changes: a fresh Node process that loads the model and answers one 8-token text
 * (what `attnviz serve` does before its first answer), on onnxruntime (no TF.js imported) and on TF.js (cpu),
 * `--cold N` rounds interleaved, wall and CPU time (user + system of that process).
 *
 *   node dist/bench/embedded.js [--runs N] [--rounds R] [--cold N]
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { Attention } from '../src/core/attention.js';
import { TfjsModel } from '../src/models/tfjs-model.js';
import { exactText } from './texts.js';

type Backend = 'onnxruntime' | 'onnxruntime 1 thread' | 'tfjs-cpu' | 'tfjs-wasm';
const BACKENDS: Backend[] = ['onnxruntime', 'onnxruntime 1 thread', 'tfjs-cpu', 'tfjs-wasm'];
const LENGTHS = [8, 128];
const TARGET_MS: Record<number, number> = { 8: 20, 128: 60 };

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const load = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(', ');

/** The wasm backend, registered beside the cpu one, with the SparseToDense kernel it lacks. */
async function registerWasm(): Promise<(backend: 'cpu' | 'wasm') => Promise<void>> {
  const tf = await import('@tensorflow/tfjs-core');
  const { shared } = await import('@tensorflow/tfjs-backend-cpu');
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const require = createRequire(import.meta.url);
  wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
  type WasmBackend = InstanceType<typeof wasm.BackendWasm>;
  tf.registerKernel({
    kernelName: tf.SparseToDense,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as WasmBackend;
      const { sparseIndices, sparseValues, defaultValue } = inputs as Record<string, TensorInfo>;
      const outputShape = (attrs as { outputShape: number[] }).outputShape;
      const s = tf.backend_util.calculateShapes(sparseValues, sparseIndices, outputShape);
      // The graph's SparseToDense scatters int32 token ids at int32 positions.
      if (sparseIndices.dtype !== 'int32' || sparseValues.dtype !== 'int32')
        throw new Error('SparseToDense: not int32');
      const buffer = (t: TensorInfo) => tf.buffer(t.shape, 'int32', b.readSync(t.dataId) as Int32Array);
      const values = shared.scatterImpl(
        buffer(sparseIndices),
        buffer(sparseValues),
        outputShape,
        s.outputSize,
        s.sliceSize,
        s.numUpdates,
        s.sliceRank,
        s.strides,
        (b.readSync(defaultValue.dataId) as Int32Array)[0],
        false,
      );
      const out = b.makeOutput(outputShape, values.dtype);
      b.typedArrayFromHeap(out).set(values.values as Int32Array);
      return out;
    },
  });
  return async (backend) => {
    if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} did not start`);
  };
}

/** Largest |a − b| over attention, q and k. */
function maxDiff(a: Attention, b: Attention): { attention: number; qk: number } {
  const diff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
  return {
    attention: diff(a.attention.data, b.attention.data),
    qk: Math.max(diff(a.query!.data, b.query!.data), diff(a.key!.data, b.key!.data)),
  };
}

/** In a fresh process: load the model, answer one text, print this process's CPU milliseconds. */
async function cold(runtime: string): Promise<void> {
  const text = 'The cat sat on the mat today.';
  if (runtime === 'tfjs') await (await TfjsModel.load('embedded', { runtime: 'tfjs' })).attention(text);
  else await (await (await import('../src/models/load-model.js')).loadModel()).attention(text);
  const { user, system } = process.cpuUsage();
  console.log((user + system) / 1000);
  process.exit(0);
}

/** Wall and CPU ms of `--cold` runs in fresh processes, rounds interleaved. */
function coldStarts(rounds: number): void {
  const rows: Record<string, number[][]> = { onnxruntime: [], tfjs: [] };
  for (let r = 0; r <= rounds; r++)
    for (const runtime of Object.keys(rows)) {
      const t = performance.now();
      const cpu = Number(
        execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--cold', runtime]).toString(),
      );
      if (r > 0) rows[runtime].push([performance.now() - t, cpu]); // round 0 warms the page cache
    }
  console.log(`\nfresh process, load + one 8-token answer, median of ${rounds} (wall / CPU ms):`);
  for (const [runtime, xs] of Object.entries(rows))
    console.log(
      `  ${runtime.padEnd(12)} ${median(xs.map((x) => x[0])).toFixed(0)} / ${median(xs.map((x) => x[1])).toFixed(0)}`,
    );
  console.log(`load average: ${load()}`);
}

async function main(): Promise<void> {
  const runs = arg('--runs', 10),
    rounds = arg('--rounds', 3);
  console.log(
    `attnviz embedded-model benchmark: ${os.cpus()[0]?.model}, ${os.cpus().length} cores, node ${process.version}`,
  );
  console.log(`load average at start: ${load()}`);
  const useBackend = await registerWasm();
  let t = performance.now();
  const onnx = await TfjsModel.load('embedded');
  const onnxLoad = performance.now() - t;
  const onnx1 = await TfjsModel.load('embedded', { threads: 1 });
  t = performance.now();
  const tfjs = await TfjsModel.load('embedded', { runtime: 'tfjs' });
  const tfjsLoad = performance.now() - t;
  console.log(`load: onnxruntime ${onnxLoad.toFixed(0)} ms, TF.js ${tfjsLoad.toFixed(0)} ms (first load pays imports)`);

  const count = (text: string) => onnx.tokenize(text).ids.length;
  const texts = LENGTHS.map((n) => exactText(count, n));
  const times = new Map<string, number[]>();
  const key = (b: Backend, n: number) => `${b} ${n}`;
  const reference = new Map<number, Attention>();
  const diffs = new Map<string, { attention: number; qk: number }>();

  const block = async (backend: Backend, text: string, n: number) => {
    const model = backend === 'onnxruntime' ? onnx : backend === 'onnxruntime 1 thread' ? onnx1 : tfjs;
    const first = await model.attention(text); // unmeasured: a moved backend's first run, a new shape's
    if (backend === 'tfjs-cpu') reference.set(n, first);
    else if (reference.has(n)) diffs.set(key(backend, n), maxDiff(first, reference.get(n)!));
    const list = times.get(key(backend, n)) ?? [];
    for (let r = 0; r < runs; r++) {
      const s = performance.now();
      await model.attention(text);
      list.push(performance.now() - s);
    }
    times.set(key(backend, n), list);
  };
  for (let round = 0; round < rounds; round++) {
    for (const backend of round % 2 ? [...BACKENDS].reverse() : BACKENDS) {
      if (backend.startsWith('tfjs')) await useBackend(backend === 'tfjs-cpu' ? 'cpu' : 'wasm');
      for (let i = 0; i < texts.length; i++) await block(backend, texts[i], LENGTHS[i]);
    }
  }
  // The onnxruntime values once more against the cpu reference (their first blocks may have preceded it).
  for (let i = 0; i < texts.length; i++)
    for (const [backend, model] of [
      ['onnxruntime', onnx],
      ['onnxruntime 1 thread', onnx1],
    ] as const)
      diffs.set(key(backend, LENGTHS[i]), maxDiff(await model.attention(texts[i]), reference.get(LENGTHS[i])!));

  console.log(`load average at end: ${load()}; ${rounds} rounds × ${runs} runs per backend and length\n`);
  console.log('| backend | tokens | median ms | min ms | target | max |Δ attention| | max |Δ q, k| |');
  console.log('|---|---|---|---|---|---|---|');
  for (const n of LENGTHS)
    for (const backend of BACKENDS) {
      const ts = times.get(key(backend, n))!;
      const d = diffs.get(key(backend, n));
      const met = median(ts) <= TARGET_MS[n] ? 'met' : 'not met';
      console.log(
        `| ${backend} | ${n} | ${median(ts).toFixed(1)} | ${Math.min(...ts).toFixed(1)} | ` +
          `≤ ${TARGET_MS[n]} ms: ${met} | ` +
          `${d ? d.attention.toExponential(1) : 'reference'} | ${d ? d.qk.toExponential(1) : 'reference'} |`,
      );
    }
  await onnx.release();
  await onnx1.release();
  await tfjs.release();
  coldStarts(arg('--cold', 3));
}

if (process.argv[2] === '--cold') await cold(process.argv[3]);
else await main();
