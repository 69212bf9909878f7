/**
 * What the Llama-style decoders share (llama.ts, qwen3.ts, gemma.ts, phi3.ts, olmo2.ts, falcon.ts): the
 * rotation of per-head q and k (rotary.ts), grouped-query key/value heads, the KV cache, sliding-window masks, and the
 * attention itself with the extras some families put on the scores. Each family file keeps its own forward order
 * (norms, projections, MLP) and calls `selfAttention` for the part between the projections and o_proj.
 *
 * The scores of layer l, head h, query i, key j are, with q and k as reported (after norms and RoPE):
 *   s = q·k · scale                       (scale = 1/√d unless the family says otherwise: Gemma's
 *                                          query_pre_attn_scalar^−½)
 *   s = c · tanh(s / c)                   (attention logit soft-capping c, Gemma 2)
 *   s = s + mask                          (−inf for j > i, and for j ≤ i − window on sliding-window layers)
 * and the attention is softmax over j. The engine reports scale, c and each layer's window (Attention's
 * scoreScale, attnLogitSoftcapping, layerWindows), so that a reader reproduces the attention from q and k.
 */
import { check } from '../core/errors.js';
import { ModelConfig } from '../load/config.js';
import type { WeightRef, Weights } from '../load/weights.js';
import type { GraphBuilder } from './builder.js';
import { cacheNames, extendCache, lmHead, type DecodingBuildOptions } from './decoding.js';
import { declareLayerOutputs, headDim, INPUTS, outputNames, splitNames, TASK_HEADS, type ModelDims } from './family.js';
import type { NamedLayers } from './layers.js';
import type { RopeLayout } from './rotary.js';

export interface DecoderDims extends ModelDims {
  /** Key/value heads (= heads without GQA). */
  kvHeads: number;
  rope: RopeLayout;
}

/** The extras on one layer's scores (see the header). */
export interface ScoreExtras {
  /** The factor q·kᵀ is multiplied by. */
  scale: number;
  /** Attention logit soft-capping: c·tanh(s/c) before the mask. */
  softcap?: number;
  /** The additive mask of this layer, `[T, S]`: causal, or causal and sliding-window. */
  mask: string;
}

/** What a decoder's embedding and language-model head are read with. */
export interface HeadDims {
  vocab: number;
  hidden: number;
  /** The language-model head is the embedding matrix (tie_word_embeddings). */
  tied: boolean;
}

/** What the Llama-style decoders with a gated MLP and RMSNorm share (llama, qwen3, olmo2, phi3). */
export interface GatedDecoderDims extends DecoderDims, HeadDims {
  /** MLP width. */
  intermediate: number;
  /** RMSNorm epsilon. */
  eps: number;
}

/** A family's defaults for gatedDecoderDims: those of its transformers config class. */
export interface GatedDecoderDefaults {
  hidden: number;
  heads: number;
  /** null: one per attention head. */
  kvHeads: number | null;
  /** head_dim when the config has none; without it, an absent head_dim is hidden / heads. */
  headDim?: number;
  layers: number;
  positions: number;
  vocab: number;
  intermediate: number;
  eps: number;
}

/**
 * The sizes of a Llama-style config, by transformers' field names, with the family's `defaults`; the key/value
 * heads must divide the heads. RoPE's layout is rotate_half's (GGUF files: graph/families.ts ggufFamily).
 */
export function gatedDecoderDims(c: ModelConfig, defaults: GatedDecoderDefaults): GatedDecoderDims {
  const hidden = c.size('hidden_size', defaults.hidden);
  const heads = c.size('num_attention_heads', defaults.heads);
  const kvHeads = c.size('num_key_value_heads', defaults.kvHeads ?? heads);
  checkKvHeads(c, heads, kvHeads);
  // head_dim is explicit in newer configs (and may differ from hidden / heads); older ones imply it.
  const implied = defaults.headDim === undefined && (c.raw.head_dim === undefined || c.raw.head_dim === null);
  return {
    layers: c.size('num_hidden_layers', defaults.layers),
    heads,
    headDim: implied ? headDim(c, hidden, heads) : c.size('head_dim', defaults.headDim),
    hidden,
    maxPositions: c.size('max_position_embeddings', defaults.positions),
    kvHeads,
    rope: 'half',
    vocab: c.size('vocab_size', defaults.vocab),
    intermediate: c.size('intermediate_size', defaults.intermediate),
    eps: c.float('rms_norm_eps', defaults.eps),
    tied: c.bool('tie_word_embeddings', false),
  };
}

/** Key/value heads must divide the attention heads evenly: each serves heads / kvHeads query heads. */
export function checkKvHeads(c: ModelConfig, heads: number, kvHeads: number): void {
  check(heads % kvHeads === 0, `${c.path}: ${heads} attention heads cannot share ${kvHeads} key/value heads evenly`);
}

/** RoPE rotates pairs of dimensions: the head size must be even. */
export function checkRotaryHeadDim(c: ModelConfig, d: number): void {
  check(d % 2 === 0, `${c.path}: head_dim ${d} must be even for rotary embeddings`);
}

/** θ and the rope_scaling / rope_parameters object of a config (transformers ≥ 5 nests both in rope_parameters). */
export function ropeSettings(c: ModelConfig, defaultTheta: number): { theta: number; scaling: ModelConfig | null } {
  const params = isObject(c.raw.rope_parameters)
    ? new ModelConfig(c.raw.rope_parameters, `${c.path} rope_parameters`)
    : null;
  const theta = params?.float('rope_theta', defaultTheta) ?? c.float('rope_theta', defaultTheta);
  const scaling =
    params ?? (isObject(c.raw.rope_scaling) ? new ModelConfig(c.raw.rope_scaling, `${c.path} rope_scaling`) : null);
  return { theta, scaling };
}

/**
 * A decoder's graph inputs: token ids and positions `[T]`, and the causal mask `[T, S]`: S = T, or with a KV
 * cache S = P + T, the P cached positions and the T new ones.
 */
export function decoderInputs(
  g: GraphBuilder,
  options: DecodingBuildOptions,
): { ids: string; positions: string; mask: string } {
  return {
    ids: g.input(INPUTS.inputIds, 'int64', ['T']),
    positions: g.input(INPUTS.positionIds, 'int64', ['T']),
    mask: g.input(INPUTS.causalMask, 'float', ['T', options.kvCache ? 'S' : 'T']),
  };
}

/**
 * The token embedding `[vocab, D]` (`name`, with the checkpoint's prefix): a tied matrix saved once may be
 * stored as `lm_head.weight` instead (safetensors drops shared duplicates).
 */
export function tokenEmbedding(w: Weights, name: string, c: HeadDims): WeightRef {
  return w.get(c.tied ? [name, 'lm_head.weight'] : name, [c.vocab, c.hidden]);
}

/**
 * A decoder's outputs: the final hidden state `hidden` (the final norm's output, named HIDDEN_LAST) `[T, D]`;
 * with `options.logits`, its logits over the embedding when tied, else over `lm_head.weight` `[vocab, D]` (read
 * only then); and, when extracting, each layer's q, k and probabilities.
 */
export function decoderOutputs(
  g: GraphBuilder,
  w: Weights,
  hidden: string,
  embedding: WeightRef,
  c: HeadDims & ModelDims,
  options: DecodingBuildOptions,
): void {
  g.output(hidden, ['T', c.hidden]);
  if (options.logits) {
    check(
      c.tied || w.has('lm_head.weight'),
      'checkpoint is missing tensor "lm_head.weight" (tie_word_embeddings is false), needed for logits',
    );
    lmHead(g, hidden, c.tied ? embedding : w.get('lm_head.weight', [c.vocab, c.hidden]), options.logits);
  }
  declareLayerOutputs(g, c, options);
}

/** What a Llama-style checkpoint holds that no graph reads: task heads, a saved copy of the tied head, inv_freq. */
export const DECODER_SKIPPED: readonly RegExp[] = [TASK_HEADS, /^lm_head\.weight$/, /\.rotary_emb\.inv_freq$/];

/** Which layers slide, from `layer_types` or, as Qwen3Config derives it, use_sliding_window + max_window_layers. */
export function layerTypes(c: ModelConfig, layers: number, derived: (i: number) => boolean): boolean[] {
  const given = c.raw.layer_types;
  if (given === undefined || given === null) return Array.from({ length: layers }, (_, i) => derived(i));
  check(
    Array.isArray(given) && given.length === layers,
    `${c.path}: field "layer_types" must list one type per layer (${layers})`,
  );
  return given.map((t, i) => {
    check(
      t === 'full_attention' || t === 'sliding_attention',
      `${c.path}: layer_types[${i}] is ${JSON.stringify(t)}; supported: full_attention, sliding_attention`,
    );
    return t === 'sliding_attention';
  });
}

/**
 * The mask of each layer's sliding window, made once per window: the causal `mask` itself for null, else it
 * limited to the window (slidingWindowMask).
 */
export function windowMasks(g: GraphBuilder, positions: string, mask: string): (window: number | null) => string {
  const masks = new Map<number | null, string>([[null, mask]]);
  return (window) => {
    if (!masks.has(window)) masks.set(window, slidingWindowMask(g, positions, mask, window!));
    return masks.get(window)!;
  };
}

/**
 * The gated MLP down(act(gate(h)) · up(h)) of `<layer>.mlp.{gate,up,down}_proj` (SwiGLU: act = SiLU, the
 * default), from width D through `intermediate` and back.
 */
export function gatedMlp(
  g: GraphBuilder,
  linear: NamedLayers['linear'],
  h: string,
  layer: string,
  dims: { hidden: number; intermediate: number; bias: boolean },
  act: (x: string) => string = (x) => g.silu(x),
): string {
  const { hidden: D, intermediate: I, bias } = dims;
  const gated = g.op('Mul', [
    act(linear(h, `${layer}.mlp.gate_proj`, D, I, bias)),
    linear(h, `${layer}.mlp.up_proj`, D, I, bias),
  ]);
  return linear(gated, `${layer}.mlp.down_proj`, I, D, bias);
}

/**
 * `[kvHeads, T, d]` → `[heads, T, d]`, kv head j repeated for query heads j·n … j·n + n − 1 (n = heads /
 * kvHeads).
 */
export function repeatKv(g: GraphBuilder, x: string, c: DecoderDims, out?: string): string {
  const n = c.heads / c.kvHeads;
  if (n === 1) return out ? g.op('Identity', [x], {}, out) : x;
  const expanded = g.op('Expand', [g.op('Unsqueeze', [x, g.ints([1])]), g.ints([1, n, 1, 1])]);
  return g.op('Reshape', [expanded, g.ints([c.heads, -1, c.headDim])], {}, out);
}

/**
 * The causal mask `[T, S]` (graph input) further limited to a sliding window: query i (at `positions[i]`)
 * sees keys j with i − window < j ≤ i, as transformers' sliding_window_causal mask. Key positions are
 * 0 … S − 1 (with a KV cache, the cached ones first).
 */
export function slidingWindowMask(g: GraphBuilder, positions: string, causal: string, window: number): string {
  const scalar = (x: string) => g.op('Squeeze', [x, g.ints([0])]);
  const S = scalar(g.op('Gather', [g.op('Shape', [causal]), g.ints([1])]));
  const keys = g.op('Range', [scalar(g.ints([0])), S, scalar(g.ints([1]))]);
  const distance = g.op('Sub', [g.op('Unsqueeze', [positions, g.ints([1])]), g.op('Unsqueeze', [keys, g.ints([0])])]);
  const far = g.op('GreaterOrEqual', [distance, g.ints([window])]);
  return g.op('Where', [far, g.scalar(-Infinity), causal]);
}

/**
 * One layer's self-attention from per-head projections `q` `[H, T, d]`, `k`, `v` `[K, T, d]` (before RoPE):
 * rotates q and k with `rotate`, extends the KV cache when building one, repeats kv heads, and returns the
 * context `[T, H·d]` for o_proj. Emits the layer's q, k (after RoPE, kv heads repeated) and probs; with
 * options.split, q, k and v, and takes the context as an input instead of computing the attention.
 */
export function selfAttention(
  g: GraphBuilder,
  c: DecoderDims,
  layer: number,
  proj: { q: string; k: string; v: string },
  rotate: (x: string, out?: string) => string,
  options: DecodingBuildOptions,
  extras: ScoreExtras,
): string {
  const out = outputNames(layer);
  const K = c.kvHeads,
    d = c.headDim;
  const q = rotate(proj.q, out.q);
  let k = proj.k,
    v = proj.v;
  if (options.kvCache) {
    const n = cacheNames(layer);
    k = extendCache(g, rotate(k), n.pastKey, n.presentKey, K, d);
    v = extendCache(g, v, n.pastValue, n.presentValue, K, d);
  }
  const kAll = options.kvCache
    ? repeatKv(g, k, c)
    : K === c.heads
      ? rotate(k, out.k)
      : repeatKv(g, rotate(k), c, out.k);
  if (options.extract && options.split) {
    // The attention is computed outside this graph (attentionGraph): v out, the context in.
    const names = splitNames(layer);
    repeatKv(g, v, c, names.v);
    options.split.push({ scale: extras.scale, softcap: extras.softcap, mask: extras.mask });
    return g.mergeHeads(g.input(names.context, 'float', [c.heads, 'T', d]), c.heads, d);
  }
  return g.mergeHeads(scoredAttention(g, q, kAll, repeatKv(g, v, c), extras, out.probs), c.heads, d);
}

/** The inputs and outputs of attentionGraph. */
export const ATTENTION_IO = {
  q: 'q',
  k: 'k',
  v: 'v',
  mask: 'mask',
  probs: 'probs',
  context: 'context',
} as const;

/**
 * The attention of a run of heads of a layer whose graph left it out (BuildOptions.split), as a weightless
 * graph of its own: q `[n, T, d]`, k and v `[n, S, d]` (kv heads already repeated) and the layer's mask
 * `[T, S]` (or a `[1, 1]` zero for a layer without one: added, it leaves every score's bits) in; probabilities
 * `[n, T, S]` and context `[n, T, d]` out. The nodes are those selfAttention would have put in the layer's graph,
 * so the values are the same bits. One session of it serves every layer with the same scale and soft-capping.
 */
export function attentionGraph(g: GraphBuilder, headDim: number, extras: Omit<ScoreExtras, 'mask'>): void {
  const io = ATTENTION_IO;
  const [q, k, v] = [io.q, io.k, io.v].map((name, i) => g.input(name, 'float', ['n', i === 0 ? 'T' : 'S', headDim]));
  const mask = g.input(io.mask, 'float', ['maskT', 'maskS']);
  const context = scoredAttention(g, q, k, v, { ...extras, mask }, io.probs);
  g.output(io.probs, ['n', 'T', 'S']);
  g.output(g.op('Identity', [context], {}, io.context), ['n', 'T', headDim]);
}

/** softmax(extras(q·kᵀ))·v for per-head `[H, T, d]` q and `[H, S, d]` k, v; probabilities to `probsOut`. */
export function scoredAttention(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  extras: ScoreExtras,
  probsOut: string,
): string {
  if (extras.softcap === undefined) return g.attention(q, k, v, extras.scale, probsOut, extras.mask);
  const c = extras.softcap;
  check(c > 0, `attention logit soft-capping ${c} must be positive`);
  const scores = g.op('Mul', [
    g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 2, 1] })]),
    g.scalar(extras.scale),
  ]);
  const capped = g.op('Mul', [g.op('Tanh', [g.op('Div', [scores, g.scalar(c)])]), g.scalar(c)]);
  const probs = g.op('Softmax', [g.op('Add', [capped, extras.mask])], { axis: -1 }, probsOut);
  return g.op('MatMul', [probs, v]);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
