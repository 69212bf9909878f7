/**
 * DeBERTa-v2 and DeBERTa-v3 (He et al. 2021, 2023), as in transformers' modeling_deberta_v2.py: a post-norm
 * BERT-style encoder whose attention is disentangled — besides content·content, the score of query i and key
 * j has a content→position term (q_i against the key projection of the relative-position embedding of i − j)
 * and a position→content term (k_j against the query projection of that of j − i), each enabled by
 * `pos_att_type` ("c2p", "p2c"), and all divided by √(d · scale_factor), scale_factor = 1 + the number of
 * enabled terms:
 *
 *   score(i, j) = [q_i·k_j + q_i·pk[c2p(i − j)] + k_j·pq[p2c(i − j)]] / √(d · scale_factor)
 *
 * Relative positions are log-bucketed (make_log_bucket_position: exact within ±position_buckets/2,
 * logarithmic up to max_relative_positions, beyond which buckets clamp at the table's ends), then offset by
 * the span (position_buckets, else max_relative_positions) and clamped to [0, 2·span − 1]:
 * c2p(r) = clamp(bucket(r) + span), p2c(r) = clamp(−bucket(r) + span). pk, pq are the layer's pos_key_proj /
 * pos_query_proj (or, with share_att_key, its key_proj / query_proj) of `encoder.rel_embeddings` (after
 * `encoder.LayerNorm` when norm_rel_ebd says layer_norm). DeBERTa-v2-xlarge's conv layer (conv_kernel_size)
 * adds LN(h₀ + act(conv(embeddings))) after the first layer.
 *
 * What is reported: q and k are the content projections (query_proj, key_proj, with biases) as they enter
 * q·kᵀ; Attention.scoreScale = 1/√(d · scale_factor); and the two position terms, already scaled, per layer
 * as Attention.layerPositionBias `[L, H, T, T]` (graph outputs `layers.N.attn.position_bias`), so that
 * softmax(q·kᵀ · scoreScale + layerPositionBias[l]) reproduces the attention.
 *
 * Config defaults are DebertaV2Config's (vocab_size 128100, hidden_size 1536, num_hidden_layers 24,
 * num_attention_heads 24, intermediate_size 6144, max_position_embeddings 512, type_vocab_size 0,
 * layer_norm_eps 1e-7, relative_attention false, max_relative_positions −1 (= max_position_embeddings),
 * position_buckets −1 (no buckets), pos_att_type none, position_biased_input true, share_att_key false,
 * norm_rel_ebd "none", conv_kernel_size 0, pad_token_id 0).
 */
import { check } from '../core/errors.js';
import { type ModelConfig, oneOf } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import {
  declareLayerOutputs,
  HIDDEN_LAST,
  ID_BUFFERS,
  INPUTS,
  layerBiasName,
  outputNames,
  TASK_HEADS,
  type BuildOptions,
  type Family,
  type ModelDims,
} from './family.js';

const CONV_ACTIVATIONS = [...ACTIVATIONS, 'tanh'] as const;

export interface DebertaV2Config extends ModelDims {
  vocab: number;
  embedding: number;
  typeVocab: number;
  intermediate: number;
  eps: number;
  act: ActivationName;
  /** Position embeddings added to the input (position_biased_input). */
  positionInput: boolean;
  relative: boolean;
  c2p: boolean;
  p2c: boolean;
  shareAttKey: boolean;
  /** Relative-position span: position_buckets, else max_relative_positions. */
  span: number;
  buckets: number;
  maxRelative: number;
  normRel: boolean;
  conv: { kernel: number; groups: number; act: (typeof CONV_ACTIVATIONS)[number] } | null;
  scoreScale: number;
}

function readConfig(c: ModelConfig): DebertaV2Config {
  const hidden = c.size('hidden_size', 1536);
  const heads = c.size('num_attention_heads', 24);
  check(hidden % heads === 0, `${c.path}: hidden size ${hidden} is not a multiple of ${heads} attention heads`);
  const d = c.size('attention_head_size', hidden / heads);
  check(d * heads === hidden, `${c.path}: attention_head_size ${d} × ${heads} heads ≠ hidden size ${hidden}`);
  const raw = c.raw.pos_att_type;
  const types = (
    typeof raw === 'string' ? raw.toLowerCase().split('|') : Array.isArray(raw) ? raw : raw == null ? [] : [raw]
  ).map((t) => String(t).trim());
  for (const t of types)
    check(t === 'c2p' || t === 'p2c', `${c.path}: pos_att_type "${t}" is not supported (supported: c2p, p2c)`);
  const relative = c.bool('relative_attention', false);
  const maxPositions = c.size('max_position_embeddings', 512);
  let maxRelative = c.float('max_relative_positions', -1);
  if (maxRelative < 1) maxRelative = maxPositions;
  const buckets = c.float('position_buckets', -1);
  check(
    relative || (types.length === 0 && buckets <= 0),
    `${c.path}: relative_attention is false but pos_att_type ${JSON.stringify(types)} / ` +
      `position_buckets ${buckets} ask for relative positions; this combination is not supported`,
  );
  check(
    Number.isSafeInteger(maxRelative) && Number.isSafeInteger(buckets),
    `${c.path}: max_relative_positions and position_buckets must be integers`,
  );
  const norms = c
    .string('norm_rel_ebd', 'none')
    .toLowerCase()
    .split('|')
    .map((s) => s.trim());
  for (const n of norms)
    check(
      n === 'none' || n === 'layer_norm',
      `${c.path}: norm_rel_ebd "${n}" is not supported (supported: none, layer_norm)`,
    );
  const kernel = c.float('conv_kernel_size', 0);
  const scaleFactor = 1 + types.length;
  return {
    layers: c.size('num_hidden_layers', 24),
    heads,
    headDim: d,
    hidden,
    maxPositions,
    vocab: c.size('vocab_size', 128100),
    embedding: c.size('embedding_size', hidden),
    typeVocab: [undefined, null, 0].includes(c.raw.type_vocab_size as number) ? 0 : c.size('type_vocab_size'),
    intermediate: c.size('intermediate_size', 6144),
    eps: c.float('layer_norm_eps', 1e-7),
    act: oneOf(c, 'hidden_act', ACTIVATIONS, 'gelu'),
    positionInput: c.bool('position_biased_input', true),
    relative,
    c2p: types.includes('c2p'),
    p2c: types.includes('p2c'),
    shareAttKey: c.bool('share_att_key', false),
    span: buckets > 0 ? buckets : maxRelative,
    buckets,
    maxRelative,
    normRel: norms.includes('layer_norm'),
    conv:
      kernel > 0
        ? {
            kernel: c.size('conv_kernel_size'),
            groups: c.size('conv_groups', 1),
            act: oneOf(c, 'conv_act', CONV_ACTIVATIONS, 'tanh'),
          }
        : null,
    scoreScale: 1 / Math.sqrt(d * scaleFactor),
  };
}

/**
 * make_log_bucket_position for one relative position r = i − j, in float32 as torch computes it: r itself
 * within ±bucketSize/2, else sign(r)·(⌈log(|r| / mid) / log((maxPosition − 1) / mid) · (mid − 1)⌉ + mid).
 */
export function logBucketPosition(r: number, bucketSize: number, maxPosition: number): number {
  const f = Math.fround;
  const mid = Math.floor(bucketSize / 2);
  const abs = r < mid && r > -mid ? mid - 1 : Math.abs(r);
  if (abs <= mid) return r;
  const ratio = f(f(Math.log(f(abs / mid))) / f(Math.log(f((maxPosition - 1) / mid))));
  return Math.sign(r) * (Math.ceil(f(ratio * (mid - 1))) + mid);
}

function build(g: GraphBuilder, w: Weights, c: DebertaV2Config, options: BuildOptions): void {
  const p = w.has('deberta.embeddings.word_embeddings.weight') ? 'deberta.' : '';
  const D = c.hidden,
    H = c.heads,
    d = c.headDim,
    E = c.embedding;
  const { get, linear, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });

  // Embeddings: word (+ position, + token type) in E, projected to D when they differ, LayerNorm.
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const embed = (name: string, rows: number, index: string) =>
    g.op('Gather', [g.weight(get(`embeddings.${name}.weight`, [rows, E])), index]);
  let x = embed('word_embeddings', c.vocab, ids);
  if (c.positionInput) x = g.add(x, embed('position_embeddings', c.maxPositions, positions));
  if (c.typeVocab > 0)
    x = g.add(x, embed('token_type_embeddings', c.typeVocab, g.input(INPUTS.tokenTypeIds, 'int64', ['T'])));
  if (E !== D) x = g.linear(x, get('embeddings.embed_proj.weight', [D, E]));
  x = layerNorm(x, 'embeddings.LayerNorm');
  const embeddings = x;

  // Relative positions: per (i, j) the c2p and p2c indices into the 2·span rows, from tables over
  // r = i − j ∈ [−(maxPositions − 1), maxPositions − 1].
  let rel: { c2p: string; p2c: string; table: string } | null = null;
  if (c.relative) {
    const M = c.maxPositions - 1;
    const bucket = (r: number) => (c.buckets > 0 ? logBucketPosition(r, c.buckets, c.maxRelative) : r);
    const clamp = (v: number) => Math.min(Math.max(v, 0), 2 * c.span - 1);
    const lookup = (f: (r: number) => number) => {
      const table = g.ints(Array.from({ length: 2 * M + 1 }, (_, k) => f(k - M)));
      const r = g.op('Sub', [g.op('Unsqueeze', [positions, g.ints([1])]), g.op('Unsqueeze', [positions, g.ints([0])])]);
      // [1, T, T], broadcast over heads by Expand.
      const index = g.op('Unsqueeze', [g.op('Gather', [table, g.op('Add', [r, g.ints([M])])]), g.ints([0])]);
      return g.op('Expand', [index, g.ints([H, 1, 1])]);
    };
    let table = g.weight(get('encoder.rel_embeddings.weight', [2 * c.span, D]));
    if (c.normRel) table = layerNorm(table, 'encoder.LayerNorm');
    rel = {
      c2p: lookup((r) => clamp(bucket(r) + c.span)),
      p2c: lookup((r) => clamp(-bucket(r) + c.span)),
      table,
    };
  }

  for (let i = 0; i < c.layers; i++) {
    const l = `encoder.layer.${i}`;
    const a = `${l}.attention.self`;
    const out = outputNames(i);
    const q = g.splitHeads(linear(x, `${a}.query_proj`, D, D), H, d, out.q);
    const k = g.splitHeads(linear(x, `${a}.key_proj`, D, D), H, d, out.k);
    const v = g.splitHeads(linear(x, `${a}.value_proj`, D, D), H, d);
    let scores = g.op('Mul', [
      g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 2, 1] })]),
      g.scalar(c.scoreScale),
    ]);
    if (rel) {
      // The position terms [H, T, T], scaled like the content term; reported per layer.
      const terms: string[] = [];
      const project = (name: string) => g.splitHeads(linear(rel!.table, name, D, D), H, d); // [H, 2·span, d]
      if (c.c2p) {
        const posKey = project(c.shareAttKey ? `${a}.key_proj` : `${a}.pos_key_proj`);
        const all = g.op('MatMul', [q, g.op('Transpose', [posKey], { perm: [0, 2, 1] })]); // [H, T, 2·span]
        terms.push(g.op('GatherElements', [all, rel.c2p], { axis: 2 }));
      }
      if (c.p2c) {
        const posQuery = project(c.shareAttKey ? `${a}.query_proj` : `${a}.pos_query_proj`);
        const all = g.op('MatMul', [k, g.op('Transpose', [posQuery], { perm: [0, 2, 1] })]); // [H, T(key), 2·span]
        const gathered = g.op('GatherElements', [all, rel.p2c], { axis: 2 }); // [H, j, i]
        terms.push(g.op('Transpose', [gathered], { perm: [0, 2, 1] }));
      }
      if (terms.length > 0) {
        const sum = terms.length === 2 ? g.add(terms[0], terms[1]) : terms[0];
        const bias = g.op('Mul', [sum, g.scalar(c.scoreScale)], {}, layerBiasName(i));
        if (options.extract) g.output(bias, [H, 'T', 'T']);
        scores = g.add(scores, bias);
      }
    }
    const probs = g.op('Softmax', [scores], { axis: -1 }, out.probs);
    const context = g.mergeHeads(g.op('MatMul', [probs, v]), H, d);
    x = layerNorm(g.add(linear(context, `${l}.attention.output.dense`, D, D), x), `${l}.attention.output.LayerNorm`);
    const h = g.activation(linear(x, `${l}.intermediate.dense`, D, c.intermediate), c.act);
    x = layerNorm(g.add(linear(h, `${l}.output.dense`, c.intermediate, D), x), `${l}.output.LayerNorm`);
    if (i === 0 && c.conv) {
      // ConvLayer: LN(h₀ + act(conv(embeddings))), a 1-D convolution over the tokens, 'same' padding.
      const { kernel, groups } = c.conv;
      const input = g.op('Unsqueeze', [g.op('Transpose', [embeddings], { perm: [1, 0] }), g.ints([0])]); // [1, D, T]
      const pad = (kernel - 1) / 2;
      const conv = g.op(
        'Conv',
        [
          input,
          g.weight(get('encoder.conv.conv.weight', [D, D / groups, kernel])),
          g.weight(get('encoder.conv.conv.bias', [D])),
        ],
        { group: groups, pads: [pad, pad], kernel_shape: [kernel] },
      );
      const back = g.op('Transpose', [g.op('Squeeze', [conv, g.ints([0])])], { perm: [1, 0] }); // [T, D]
      const act = c.conv.act === 'tanh' ? g.op('Tanh', [back]) : g.activation(back, c.conv.act);
      x = layerNorm(g.add(x, act), 'encoder.conv.LayerNorm');
    }
  }

  g.output(g.op('Identity', [x], {}, HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const debertaV2: Family<DebertaV2Config> = {
  modelType: 'deberta-v2',
  causal: false,
  readConfig,
  build,
  // Masked-LM / replaced-token heads, the pooler, and the absolute positions v3 saves but never reads
  // (transformers ignores position_embeddings when position_biased_input is false).
  skipped: [
    ID_BUFFERS,
    TASK_HEADS,
    /^lm_predictions\./,
    /^mask_predictions\./,
    /^cls\./,
    /^(deberta\.)?pooler\./,
    /^(deberta\.)?embeddings\.position_embeddings\.weight$/,
  ],
};
