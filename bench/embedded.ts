/**
 * The embedded model (USE lite) on three backends, side by side in one process (prints figures; not a test):
 * onnxruntime (the encoder rebuilt as an ONNX graph, graph/use-lite.ts: what attnviz runs), and the TF.js graph
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
 *   node dist/bench/embedded.js [--runs N] [--rounds R]
 */
import os from 'node:os';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { Attention } from '../src/core/attention.js';
import { TfjsModel } from '../src/models/tfjs-model.js';
import { exactText } from './texts.js';

type Backend = 'onnxruntime' | 'tfjs-cpu' | 'tfjs-wasm';
const BACKENDS: Backend[] = ['onnxruntime', 'tfjs-cpu', 'tfjs-wasm'];
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
    const model = backend === 'onnxruntime' ? onnx : tfjs;
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
      if (backend !== 'onnxruntime') await useBackend(backend === 'tfjs-cpu' ? 'cpu' : 'wasm');
      for (let i = 0; i < texts.length; i++) await block(backend, texts[i], LENGTHS[i]);
    }
  }
  // The onnxruntime values once more against the cpu reference (its first block may have preceded it).
  for (let i = 0; i < texts.length; i++)
    diffs.set(key('onnxruntime', LENGTHS[i]), maxDiff(await onnx.attention(texts[i]), reference.get(LENGTHS[i])!));

  console.log(`load average at end: ${load()}; ${rounds} rounds × ${runs} runs per backend and length\n`);
  console.log('| backend | tokens | median ms | min ms | target | max |Δ attention| | max |Δ q, k| |');
  console.log('|---|---|---|---|---|---|---|');
  for (const n of LENGTHS)
    for (const backend of BACKENDS) {
      const ts = times.get(key(backend, n))!;
      const d = diffs.get(key(backend, n));
      const met = median(ts) <= TARGET_MS[n] ? 'met' : 'not met';
      console.log(
        `| ${backend} | ${n} | ${median(ts).toFixed(1)} | ${Math.min(...ts).toFixed(1)} | ≤ ${TARGET_MS[n]} ms: ${met} | ` +
          `${d ? d.attention.toExponential(1) : 'reference'} | ${d ? d.qk.toExponential(1) : 'reference'} |`,
      );
    }
  await onnx.release();
  await tfjs.release();
}

await main();
