/**
 * TF.js graph models as an attention source: the embedded default model (Universal Sentence Encoder lite: 2
 * layers of 4 heads, sentencepiece vocabulary of 8k) or another TF.js graph model with explicit Softmax
 * attention and a USE-style vocab.json. Same Attention as the engine returns. USE lite runs on onnxruntime, its
 * encoder rebuilt as an ONNX graph from the TF.js weights (graph/use-lite.ts: ~100× faster than TF.js's
 * JavaScript cpu backend, and no TF.js to import); other graphs run on TF.js (runtime/tfjs.ts), imported then.
 *
 * Where attention lives in the graph is found by walking it, not by hard-coded names: every Softmax node
 * whose input is reached from a MatMul/BatchMatMul through reshapes, additions (the padding bias) and scalar
 * multiplications (the scale) is one layer's attention, and that matmul's two inputs are q and kᵀ. USE lite:
 *
 *   q, k  [1, H, T, d]   (split_heads/transpose, split_heads_1/transpose)
 *   mul   q · scale       (a scalar Const: 1/√d, applied to q before the matmul)
 *   MatMul(q·scale, k, adj_y) + padding bias → Reshape [H·T, T] → Softmax
 *
 * The Attention convention (core/attention.ts, the neuron view) is one head size d for all layers and
 * softmax(q·kᵀ/√d) = attention, q and k unscaled. USE lite's layers differ (d = 64 in layer 0, 128 in layer 1;
 * each scaled by its own 1/√d), so q and k are reported zero-padded to the largest head size D and each
 * multiplied by c = √(scale·√D) — c = 1 where a layer's scale is already 1/√D (layer 1), 2^¼ in layer 0.
 * Then q·kᵀ/√D = q_model·k_modelᵀ·scale exactly, and the padding adds nothing to any dot product. `headDims`
 * and `scales` give each layer's own values, to undo this.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Tensor as TfTensor, io } from '@tensorflow/tfjs-core';
import type { Attention } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { EMBEDDED, tfjsModelJson } from '../load/tfjs-source.js';
import { readTfjsGraph, scalarWeight, type GraphNodeJson, type TfjsGraphFiles } from '../load/tfjs-weights.js';
import { encodeWithin, type Encoded } from '../load/tokenizer.js';
import { UseTokenizer, type Vocabulary } from '../load/use-tokenizer.js';
import { GraphBuilder } from '../graph/builder.js';
import { INPUTS, outputNames, type ModelDims } from '../graph/family.js';
import type { GraphModel, Tf } from '../runtime/tfjs.js';
import { buildUseLite, isUseLite } from '../graph/use-lite.js';
import { Weights } from '../load/weights.js';
import { Session } from '../runtime/session.js';
import { checkAttentionOptions, type AttentionModel, type AttentionOptions, READ_AS_IS } from './model.js';

/** Where one layer's attention is read in the graph. */
export interface AttentionTap {
  /** The Softmax node: probabilities `[H·T, T]` (or `[1, H, T, T]`). */
  probs: string;
  /** The tensor that is q before any scale: `[1, H, T, d]` or `[H, T, d]`. */
  query: string;
  /** Likewise k: `[…, T, d]`, or `[…, d, T]` when `keyTransposed`. */
  key: string;
  queryTransposed: boolean;
  keyTransposed: boolean;
  /** The factor applied to q·kᵀ before the softmax (scalar multiplications before or after the matmul). */
  scale: number;
}

const MATMULS = new Set(['MatMul', 'BatchMatMul', 'BatchMatMulV2', 'BatchMatMulV3']);
/** Ops passed through between the score matmul and the Softmax. */
const PASS = new Set([
  'Reshape',
  'Add',
  'AddV2',
  'BiasAdd',
  'Sub',
  'Mul',
  'RealDiv',
  'Identity',
  'Cast',
  'Select',
  'SelectV2',
]);
/** Without a max-length clip in the graph, inputs are bounded here (attention is T² per head). */
const DEFAULT_MAX_POSITIONS = 512;

export class TfjsModel implements AttentionModel {
  readonly causal = false;
  /** An encoder: one text or a pair, no generation. */
  readonly capabilities = READ_AS_IS;

  private constructor(
    /** What the user passed: 'embedded', a folder or a model.json path. */
    readonly source: string,
    /** The folder of model.json. */
    readonly dir: string,
    /** 'use-lite' for the Universal Sentence Encoder lite graph, else 'tfjs-graph'. */
    readonly modelType: string,
    /** `headDim` is the head size q and k are reported in: the largest of `headDims`. */
    readonly dims: ModelDims,
    /** Each layer's own head size. */
    readonly headDims: number[],
    /** Each layer's factor on q·kᵀ (USE lite: 1/√headDims[i]). */
    readonly scales: number[],
    readonly weightBytes: number,
    /** 'onnxruntime' for USE lite (rebuilt as an ONNX graph), 'tfjs' for other TF.js graphs. */
    readonly runtime: 'onnxruntime' | 'tfjs',
    private readonly runner: GraphRunner,
    private readonly vocabulary: Vocabulary,
    private readonly tokenizer: UseTokenizer,
  ) {}

  private released = false;

  /**
   * USE lite (the embedded model) runs on onnxruntime, its encoder rebuilt from the TF.js weights
   * (graph/use-lite.ts); any other TF.js graph runs on TF.js's cpu backend, imported then. `runtime: 'tfjs'`
   * forces TF.js for USE lite too (the reference the onnxruntime graph is tested and benchmarked against).
   */
  static async load(
    source: string = EMBEDDED,
    options: { threads?: number; runtime?: 'tfjs' } = {},
  ): Promise<TfjsModel> {
    const modelJson = tfjsModelJson(source);
    check(modelJson, `${source}: not a TF.js graph model (a folder with model.json and vocab.json)`);
    const dir = dirname(modelJson);
    const [files, vocabulary] = await Promise.all([readTfjsGraph(modelJson), readVocabulary(`${dir}/vocab.json`)]);
    const nodes = files.json.modelTopology.node;
    const constant = (name: string) => scalarWeight(files.weights, name);
    const taps = findAttentionTaps(nodes, constant);
    check(taps.length > 0, `${source}: no attention found in the TF.js graph (no Softmax fed by a MatMul of q and k)`);
    const useLite = isUseLite(nodes);
    const runner =
      useLite && options.runtime !== 'tfjs'
        ? await onnxRunner(files, dir, taps.length, options.threads)
        : await tfjsRunner(files, taps, source);
    try {
      const maxLength = [...files.weights.keys()].find((n) => /ClipToMaxLength\/Less\/y$/.test(n));
      const maxPositions = (maxLength && constant(maxLength)) || DEFAULT_MAX_POSITIONS;
      // One probe run on two tokens reads the head count and each layer's head size from the tensors.
      const probe = await runner.run([vocabulary.length > 7 ? 7 : 0, 0]);
      const heads = probe[0].heads;
      check(
        probe.every((p) => p.heads === heads),
        `${source}: layers have different head counts`,
      );
      const headDims = probe.map((p) => p.headDim);
      const headDim = Math.max(...headDims);
      const dims = { layers: taps.length, heads, headDim, hidden: heads * headDims[headDims.length - 1], maxPositions };
      return new TfjsModel(
        source,
        dir,
        useLite ? 'use-lite' : 'tfjs-graph',
        dims,
        headDims,
        taps.map((t) => t.scale),
        files.weightData.byteLength,
        runner.runtime,
        runner,
        vocabulary,
        new UseTokenizer(vocabulary),
      );
    } catch (e) {
      await runner.release();
      throw e;
    }
  }

  /** Token ids and strings of `text` (and `pair`, appended: USE has no separator token), uncut. */
  tokenize(text: string, pair: string | null = null): Encoded {
    const a = this.tokenizer.encode(text);
    const b = pair === null ? null : this.tokenizer.encode(pair);
    const ids = b ? [...a, ...b] : a;
    return {
      ids,
      tokens: ids.map((id) => this.vocabulary[id][0]),
      typeIds: ids.map(() => 0),
      sentenceBStart: b ? a.length : null,
      special: ids.map(() => false),
    };
  }

  /** Every layer's and head's attention, q and k for `text` (and `pair`). */
  async attention(text: string, options: AttentionOptions = {}): Promise<Attention> {
    check(!this.released, `${this.source}: the model was released`);
    checkAttentionOptions(this, options);
    const pair = options.pair ?? null;
    const tokenizer = { encode: (a: string, b?: string | null) => this.tokenize(a, b) };
    const { ids, tokens, sentenceBStart, special } = encodeWithin(tokenizer, text, options, {
      maxPositions: this.dims.maxPositions,
      source: this.source,
    });
    check(pair === null || ids.length > sentenceBStart!, 'the second text is empty');
    const layers = await this.runner.run(ids);
    const { layers: L, heads: H, headDim: D } = this.dims;
    const T = ids.length;
    const attention = new Float32Array(L * H * T * T);
    const query = new Float32Array(L * H * T * D);
    const key = new Float32Array(L * H * T * D);
    layers.forEach((l, i) => {
      attention.set(l.probs, i * H * T * T);
      // See the header: padding to D and c = √(scale·√D) keep softmax(q·kᵀ/√D) = attention.
      const c = Math.sqrt(this.scales[i] * Math.sqrt(D));
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          const from = (h * T + t) * l.headDim,
            to = ((i * H + h) * T + t) * D;
          for (let n = 0; n < l.headDim; n++) {
            query[to + n] = l.query[from + n] * c;
            key[to + n] = l.key[from + n] * c;
          }
        }
      }
    });
    return {
      tokens,
      text,
      pair,
      sentenceBStart,
      model: { source: this.source, modelType: this.modelType },
      causal: false,
      attention: { dims: [L, H, T, T], data: attention },
      query: { dims: [L, H, T, D], data: query },
      key: { dims: [L, H, T, D], data: key },
      inputIds: ids,
      special,
    };
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.runner.release();
  }
}

interface LayerRun {
  heads: number;
  headDim: number;
  /** [H, T, T] */
  probs: Float32Array;
  /** [H, T, headDim], as the graph has them (unscaled, unpadded). */
  query: Float32Array;
  key: Float32Array;
}

/** A graph that gives each layer's attention, q and k for token ids: on onnxruntime or on TF.js. */
interface GraphRunner {
  readonly runtime: 'onnxruntime' | 'tfjs';
  run(ids: number[]): Promise<LayerRun[]>;
  release(): Promise<void>;
}

/** USE lite as an ONNX graph (graph/use-lite.ts) in one onnxruntime session. */
async function onnxRunner(
  files: TfjsGraphFiles,
  dir: string,
  layers: number,
  threads: number | undefined,
): Promise<GraphRunner> {
  // The weights are graph constants (from the shards' bytes), not external data: no checkpoint files to point at.
  const g = new GraphBuilder(Weights.of(dir, new Map()));
  const { heads, headDims } = buildUseLite(g, files.json.modelTopology.node, files.weights);
  check(headDims.length === layers, `USE lite graph: ${headDims.length} layers built, ${layers} found by the taps`);
  const session = await Session.create(g.toBytes(), dir, { threads });
  return {
    runtime: 'onnxruntime',
    async run(ids) {
      const T = ids.length;
      const out = await session.run({
        [INPUTS.inputIds]: { type: 'int64', data: BigInt64Array.from(ids, BigInt), dims: [T] },
      });
      return headDims.map((headDim, i) => {
        const o = outputNames(i);
        return { heads, headDim, probs: out[o.probs].data, query: out[o.q].data, key: out[o.k].data };
      });
    },
    release: () => session.release(),
  };
}

/** Any TF.js graph on TF.js (imported now), its attention read at the taps. */
async function tfjsRunner(files: TfjsGraphFiles, taps: AttentionTap[], source: string): Promise<GraphRunner> {
  const { loadGraph, runQueued } = await import('../runtime/tfjs.js');
  const { json, weightData } = files;
  const { tf, model } = await loadGraph({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights) as io.WeightsManifestEntry[],
    weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
    format: json.format,
  });
  const inputNames = model.inputs.map((i) => i.name);
  const inputKind =
    inputNames.length === 2 && inputNames.includes('indices') && inputNames.includes('values')
      ? 'sparse'
      : inputNames.length === 1
        ? 'dense'
        : null;
  if (!inputKind) {
    model.dispose();
    throw new AttnvizError(
      `${source}: TF.js graph inputs ${inputNames.join(', ')} are not token ` +
        `ids (one ids input, or USE's sparse indices + values)`,
    );
  }
  return {
    runtime: 'tfjs',
    run: (ids) => runQueued(() => runTfjs(tf, model, taps, inputKind, ids)),
    release: () => runQueued(async () => model.dispose()),
  };
}

/** One TF.js graph run on token `ids` (queued by the caller); tensors are disposed before returning. */
async function runTfjs(
  tf: Tf,
  model: GraphModel,
  taps: AttentionTap[],
  inputKind: 'sparse' | 'dense',
  ids: number[],
): Promise<LayerRun[]> {
  const T = ids.length;
  const inputs =
    inputKind === 'sparse'
      ? {
          indices: tf.tensor2d(
            ids.flatMap((_, i) => [0, i]),
            [T, 2],
            'int32',
          ),
          values: tf.tensor1d(ids, 'int32'),
        }
      : { [model.inputs[0].name]: tf.tensor2d(ids, [1, T], 'int32') };
  const names = [...new Set(taps.flatMap((t) => [t.probs, t.query, t.key]))];
  let outputs: TfTensor[] = [];
  try {
    const out = await model.executeAsync(inputs, names);
    outputs = Array.isArray(out) ? out : [out];
    const byName = new Map(names.map((n, i) => [n, outputs[i]]));
    return taps.map((tap) => {
      const q = byName.get(tap.query)!,
        k = byName.get(tap.key)!,
        p = byName.get(tap.probs)!;
      const [heads, qT, qD] = headShape(q.shape, tap.queryTransposed);
      const [kHeads, kT, kD] = headShape(k.shape, tap.keyTransposed);
      check(
        qT === T && kT === T && kHeads === heads && kD === qD && p.size === heads * T * T,
        `TF.js attention shapes do not match: q ${q.shape}, k ${k.shape}, probs ${p.shape} for ${T} tokens`,
      );
      const query = tap.queryTransposed
        ? swapLast(q.dataSync() as Float32Array, heads, qD, T)
        : Float32Array.from(q.dataSync());
      const key = tap.keyTransposed
        ? swapLast(k.dataSync() as Float32Array, heads, kD, T)
        : Float32Array.from(k.dataSync());
      return { heads, headDim: qD, probs: Float32Array.from(p.dataSync()), query, key };
    });
  } finally {
    tf.dispose(outputs);
    tf.dispose(Object.values(inputs));
  }
}

/** [1, H, T, d] or [H, T, d] → [H, T, d] (T and d swapped when transposed). */
function headShape(shape: number[], transposed: boolean): [number, number, number] {
  check(
    shape.length === 3 || (shape.length === 4 && shape[0] === 1),
    `TF.js q/k has shape [${shape}], not [1, heads, T, d]`,
  );
  const [h, a, b] = shape.slice(-3);
  return transposed ? [h, b, a] : [h, a, b];
}

/** [H, d, T] → [H, T, d]. */
function swapLast(x: Float32Array, H: number, d: number, T: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let h = 0; h < H; h++)
    for (let n = 0; n < d; n++) for (let t = 0; t < T; t++) out[(h * T + t) * d + n] = x[(h * d + n) * T + t];
  return out;
}

/** 'name:1' → 'name'; '^name' (a control input) → 'name'. */
const nodeName = (input: string) => input.replace(/^\^/, '').replace(/:\d+$/, '');

/**
 * The attention taps of a graph, in layer order (a later layer's Softmax has more ancestors). `constant`
 * reads a scalar Const's value (null if the node is not a scalar constant).
 */
export function findAttentionTaps(nodes: GraphNodeJson[], constant: (name: string) => number | null): AttentionTap[] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const inputs = (n: GraphNodeJson) => (n.input ?? []).filter((i) => !i.startsWith('^'));
  const scalar = (input: string) => (byName.get(nodeName(input))?.op === 'Const' ? constant(nodeName(input)) : null);

  /** The chain from `input` back to the nearest score matmul through PASS ops, matmul first; null if none. */
  const chainToMatMul = (input: string, depth: number): GraphNodeJson[] | null => {
    const n = byName.get(nodeName(input));
    if (!n || depth > 8) return null;
    if (MATMULS.has(n.op)) return [n];
    if (!PASS.has(n.op)) return null;
    for (const i of inputs(n)) {
      const chain = chainToMatMul(i, depth + 1);
      if (chain) return [...chain, n];
    }
    return null;
  };

  /** A q/k input: a scalar multiplication (or division) is the scale, its other operand the vector. */
  const unscaled = (input: string): { tensor: string; factor: number } => {
    const n = byName.get(nodeName(input));
    if (n && (n.op === 'Mul' || n.op === 'RealDiv')) {
      const [a, b] = inputs(n);
      const vb = scalar(b),
        va = n.op === 'Mul' ? scalar(a) : null;
      if (vb !== null) return { tensor: a, factor: n.op === 'Mul' ? vb : 1 / vb };
      if (va !== null) return { tensor: b, factor: va };
    }
    return { tensor: input, factor: 1 };
  };

  const flag = (n: GraphNodeJson, ...keys: string[]) =>
    keys.some((k) => (n.attr?.[k] as { b?: boolean } | undefined)?.b === true);
  const taps: (AttentionTap & { depth: number })[] = [];
  for (const softmax of nodes.filter((n) => n.op === 'Softmax')) {
    const chain = chainToMatMul(inputs(softmax)[0], 0);
    if (!chain) continue;
    const [matmul, ...between] = chain;
    let scale = 1;
    for (const n of between) {
      if (n.op !== 'Mul' && n.op !== 'RealDiv') continue;
      const [a, b] = inputs(n);
      const vb = scalar(b),
        va = scalar(a);
      if (vb !== null) scale *= n.op === 'Mul' ? vb : 1 / vb;
      else if (va !== null && n.op === 'Mul') scale *= va;
    }
    const [qIn, kIn] = inputs(matmul);
    const q = unscaled(qIn),
      k = unscaled(kIn);
    taps.push({
      probs: softmax.name,
      query: q.tensor,
      key: k.tensor,
      queryTransposed: flag(matmul, 'adj_x', 'transpose_a'),
      // q·kᵀ needs k transposed: a matmul that does not transpose its second input is given kᵀ itself.
      keyTransposed: !flag(matmul, 'adj_y', 'transpose_b'),
      scale: scale * q.factor * k.factor,
      depth: ancestors(softmax.name, byName).size,
    });
  }
  return taps.sort((a, b) => a.depth - b.depth).map(({ depth: _, ...tap }) => tap);
}

function ancestors(name: string, byName: Map<string, GraphNodeJson>): Set<string> {
  const seen = new Set<string>();
  const stack = [name];
  while (stack.length) {
    for (const i of byName.get(stack.pop()!)?.input ?? []) {
      const n = nodeName(i);
      if (!seen.has(n)) {
        seen.add(n);
        stack.push(n);
      }
    }
  }
  return seen;
}

async function readVocabulary(path: string): Promise<Vocabulary> {
  let vocab: unknown;
  try {
    vocab = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new AttnvizError(`${path}: cannot read the sentencepiece vocabulary (${(e as Error).message})`);
  }
  // The embedded vocabulary has a few null scores (':', '://', …); USE's tokenizer reads them as 0, kept as is.
  check(
    Array.isArray(vocab) &&
      vocab.length > 6 &&
      vocab.every((v) => Array.isArray(v) && typeof v[0] === 'string' && (typeof v[1] === 'number' || v[1] === null)),
    `${path}: not a sentencepiece vocabulary ([[piece, score], …])`,
  );
  return vocab as Vocabulary;
}
