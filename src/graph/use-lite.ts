/**
 * Universal Sentence Encoder lite (Cer et al. 2018; the embedded default model), the TF.js graph's encoder
 * rebuilt in ONNX from its own weights, so it runs on onnxruntime like every other model. The graph
 * (model.json, "KonaTransformer") for one sentence of T tokens, with the padding machinery (SparseToDense,
 * Where/GatherNd/ScatterNd over the mask, the -1e9 padding bias) an identity when nothing is padded:
 *
 *   e    = Embeddings_en[ids]                                  [T, E]   E = 256
 *   x₀   = e + (e + timing(T))            (Layer_0/add sums the scattered embedding and embedding + signal)
 *   timing(t) = [sin(t·inv), cos(t·inv)], inv the graph's `TimingSignal/ExpandDims_1` [1, E/2]
 *   layer i:  r = x, or dense(x) where the width changes (Layer_0/AdjustResidualInput: E → 512)
 *             h = LN(x); q, k, v = split(h·W_qkv + b) → [H, T, d]   (d = 64 in layer 0, 128 in layer 1)
 *             x = r + merge(softmax((q·s)·kᵀ)·v)·W_o + b_o           (s the graph's `mul/y`, 1/√d)
 *             x = x + relu(LN(x)·W₁ + b₁)·W₂ + b₂
 *
 * LN is the graph's (x − mean)·rsqrt(var + ε)·γ + β over the last axis, ε read from the graph. What follows
 * the last layer (mean pooling, tanh layer, l2 norm: the sentence embedding) is not built. Outputs per layer:
 * `layers.N.attn.q` and `.k` `[H, T, d]` (q before the scale) and `.probs` `[H, T, T]`, as the TF.js graph's
 * tapped tensors (models/tfjs-model.ts); test/server-embedded-model.test.ts compares the two.
 */
import type { GraphBuilder } from './builder.js';
import { INPUTS, outputNames } from './family.js';
import { check } from '../core/errors.js';
import type { GraphNodeJson, TfjsTensor } from '../load/tfjs-weights.js';

const ENCODER = 'module_apply_default/Encoder_en/KonaTransformer/Encode/';
const STACK = `${ENCODER}TransformerStack/`;
/** The variables (kernels of the 1×1 convolutions, the embedding) keep their checkpoint names. */
const VARIABLES = 'module/Encoder_en/KonaTransformer/Encode/';

/** Whether a TF.js graph is USE lite's encoder (the graph this file rebuilds). */
export function isUseLite(nodes: readonly GraphNodeJson[]): boolean {
  return nodes.some((n) => n.name.startsWith(`${STACK}Layer_0/TransformerLayer/MultiheadAttention/`));
}

export interface UseLiteShape {
  layers: number;
  heads: number;
  /** Each layer's head size. */
  headDims: number[];
}

/** Builds the encoder into `g` (input `input_ids` int64 [T]); returns its sizes. */
export function buildUseLite(
  g: GraphBuilder,
  nodes: readonly GraphNodeJson[],
  weights: Map<string, TfjsTensor>,
): UseLiteShape {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const tensor = (name: string): TfjsTensor => {
    const t = weights.get(name);
    check(t, `USE lite graph: weight ${name} missing`);
    return t;
  };
  const floats = (name: string, dims?: number[]) => {
    const t = tensor(name);
    check(t.data instanceof Float32Array, `USE lite graph: weight ${name} is not float32`);
    return g.floats(t.data, dims ?? t.shape);
  };
  /** The scalar constant that is input `index` of node `node`. */
  const constInput = (node: string, index: number): number => {
    const input = byName.get(node)?.input?.[index];
    const t = input === undefined ? undefined : weights.get(input);
    check(t && t.data.length === 1, `USE lite graph: input ${index} of ${node} is not a scalar constant`);
    return t.data[0];
  };
  const layerCount = nodes.filter((n) =>
    /TransformerStack\/Layer_\d+\/TransformerLayer\/FFN\/conv2\/BiasAdd$/.test(n.name),
  ).length;
  check(layerCount > 0, 'USE lite graph: no transformer layers');

  /** x·W + b, W stored `[in, out]` (or as a 1×1 convolution kernel `[1, 1, in, out]`). */
  const dense = (x: string, kernel: string, bias: string) => {
    const shape = tensor(kernel).shape.slice(-2);
    return g.op('Gemm', [x, floats(kernel, shape), floats(bias)]);
  };
  const layerNorm = (x: string, scope: string) => {
    const ln = `${scope}/layer_prepostprocess/layer_norm`;
    const variables = ln.replace('TransformerStack/', '');
    const [scale, bias] = ['scale', 'bias'].map((p) => floats(`${variables}/layer_norm_${p}/ConcatPartitions/concat`));
    return g.op('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: { float: constInput(`${ln}/add`, 1) } });
  };

  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const embedded = g.op('Gather', [floats('module/Embeddings_en'), ids]);
  // Positions 0..T−1 as float, times the inverse timescales: [T, 1] · [1, E/2].
  const T = g.op('Cast', [g.op('Squeeze', [g.op('Shape', [ids]), g.ints([0])])], { to: 1 });
  const positions = g.op('Unsqueeze', [g.op('Range', [g.scalar(0), T, g.scalar(1)]), g.ints([1])]);
  const angles = g.op('Mul', [positions, floats(`${STACK}Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`)]);
  const timing = g.op('Concat', [g.op('Sin', [angles]), g.op('Cos', [angles])], { axis: 1 });
  let x = g.op('Add', [embedded, g.op('Add', [embedded, timing])]);

  const shape: UseLiteShape = { layers: layerCount, heads: 0, headDims: [] };
  for (let i = 0; i < layerCount; i++) {
    const layer = `${STACK}Layer_${i}/TransformerLayer`;
    const variables = `${ENCODER}Layer_${i}/TransformerLayer`;
    const mha = `${layer}/MultiheadAttention`;
    const residualKernel = `${variables}/dense/kernel/ConcatPartitions/concat`;
    const residual = weights.has(residualKernel)
      ? dense(x, residualKernel, `${variables}/dense/bias/ConcatPartitions/concat`)
      : x;
    const h = layerNorm(x, layer);
    const qkv = dense(
      h,
      `${VARIABLES}Layer_${i}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`,
      `${variables}/MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`,
    );
    const sizes = Array.from(tensor(`${mha}/Const`).data);
    check(sizes.length === 3, `USE lite graph: layer ${i} does not split q, k, v`);
    const split = `${mha}/split_heads/split_last_dimension/Reshape/shape`;
    const heads = constInput(split, 2),
      headDim = constInput(split, 3);
    check(
      sizes.every((s) => s === heads * headDim),
      `USE lite graph: layer ${i}'s q, k, v are not ${heads} heads`,
    );
    const [q, k, v] = g.opN('Split', [qkv, g.ints(sizes)], 3, { axis: 1 });
    const o = outputNames(i);
    const perHead = (value: string, out?: string) => g.splitHeads(value, heads, headDim, out);
    const qh = perHead(q, o.q),
      kh = perHead(k, o.k);
    // As the graph does it: q scaled first, then q·kᵀ (the same float32 rounding as TF.js).
    const scores = g.op('MatMul', [
      g.op('Mul', [qh, g.scalar(constInput(`${mha}/mul`, 1))]),
      g.op('Transpose', [kh], { perm: [0, 2, 1] }),
    ]);
    const probs = g.op('Softmax', [scores], { axis: -1 }, o.probs);
    const context = g.mergeHeads(g.op('MatMul', [probs, perHead(v)]), heads, headDim);
    x = g.add(
      residual,
      dense(
        context,
        `${VARIABLES}Layer_${i}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`,
        `${variables}/MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`,
      ),
    );
    for (const name of [o.q, o.k]) g.output(name, [heads, 'T', headDim]);
    g.output(o.probs, [heads, 'T', 'T']);
    shape.heads = heads;
    shape.headDims.push(headDim);
    // The last layer's feed-forward block feeds only the sentence embedding, which is not built.
    if (i === layerCount - 1) break;
    const ffn = `${layer}/FFN`;
    const hidden = g.op('Relu', [
      dense(
        layerNorm(x, ffn),
        `${ffn}/conv1/Tensordot/Reshape_1`,
        `${variables}/FFN/conv1/bias/ConcatPartitions/concat`,
      ),
    ]);
    x = g.add(
      x,
      dense(hidden, `${ffn}/conv2/Tensordot/Reshape_1`, `${variables}/FFN/conv2/bias/ConcatPartitions/concat`),
    );
  }
  return shape;
}
