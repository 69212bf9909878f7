/**
 * Tiny random encoder-decoder checkpoints for the tests (test/encoder-decoder.test.ts, the views' browser
 * tests): BART, mBART and Marian folders (roberta-tiny's tokenizer: BART's vocabulary is GPT-2's plus four
 * specials, as RoBERTa's), T5 and mT5 folders with a small SentencePiece-style Unigram tokenizer.json written
 * here, and a float64 forward pass of each written from modeling_bart.py / modeling_mbart.py /
 * modeling_marian.py / modeling_t5.py, sharing no code with src/graph (a second reading of the same modeling
 * files: it catches wiring mistakes, not a misreading shared by both).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  activation,
  addRows,
  attend,
  causal,
  gather,
  layerNorm,
  linear,
  mulRows,
  rmsNorm,
  scaleRows,
  splitHeads,
  type Logit,
  type Rows,
} from './reference.js';
import { Rng, TinyWeights, writeTinyModel } from './tiny-models.js';
import { addedToken, sequence, specialToken, templateProcessing } from '../src/load/tokenizer-json.js';

export const SOURCE = 'The cat sat on the mat.';
export const TARGET = 'Le chat est assis sur le tapis.';

// ---- a float64 reference ------------------------------------------------------------------------------------

/** One attention's per-layer values, `[layer][head][row]`. */
export interface PartRef {
  q: Rows[][];
  k: Rows[][];
  probs: Rows[][];
}
export interface Reference {
  encoder: PartRef;
  decoder: PartRef;
  cross: PartRef;
  encoderHidden: Rows;
  decoderHidden: Rows;
  /** T5: `[head][i][j]`. */
  encoderBias?: Rows[];
  decoderBias?: Rows[];
  /** Next-token scores of the last decoder position. */
  logits: Float64Array;
}
export const emptyPart = (): PartRef => ({ q: [], k: [], probs: [] });
const emptyReference = (): Reference => ({
  encoder: emptyPart(),
  decoder: emptyPart(),
  cross: emptyPart(),
  encoderHidden: [],
  decoderHidden: [],
  logits: new Float64Array(),
});

/** h·Wᵀ (+ bias) for the last row only. */
export function lastLogits(hidden: Rows, table: Float32Array, bias: Float32Array | null, V: number): Float64Array {
  const h = hidden[hidden.length - 1],
    D = h.length;
  return Float64Array.from({ length: V }, (_, v) => {
    let s = bias ? bias[v] : 0;
    for (let j = 0; j < D; j++) s += table[v * D + j] * h[j];
    return s;
  });
}

export const argmax = (x: Float64Array) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);

// ---- BART, mBART, Marian -----------------------------------------------------------------------------------

export const V = 50261,
  D = 16,
  H = 4,
  d = 4,
  P = 64;

export interface BartSpec {
  variant: 'bart' | 'mbart' | 'marian';
  encoderLayers: number;
  decoderLayers: number;
  act: string;
  scale: boolean;
  /** Marian: store embed_positions.weight (otherwise the graph computes the sinusoids). */
  storedPositions?: boolean;
}

export const BART: BartSpec = { variant: 'bart', encoderLayers: 2, decoderLayers: 3, act: 'gelu', scale: false };
export const MBART: BartSpec = { variant: 'mbart', encoderLayers: 2, decoderLayers: 2, act: 'gelu', scale: true };
export const MARIAN: BartSpec = { variant: 'marian', encoderLayers: 3, decoderLayers: 2, act: 'swish', scale: true };
export const FFN = { encoder: 24, decoder: 40 };

export function bartConfig(s: BartSpec): Record<string, unknown> {
  const arch = {
    bart: 'BartForConditionalGeneration',
    mbart: 'MBartForConditionalGeneration',
    marian: 'MarianMTModel',
  }[s.variant];
  return {
    architectures: [arch],
    model_type: s.variant,
    vocab_size: V,
    d_model: D,
    encoder_layers: s.encoderLayers,
    decoder_layers: s.decoderLayers,
    encoder_attention_heads: H,
    decoder_attention_heads: H,
    encoder_ffn_dim: FFN.encoder,
    decoder_ffn_dim: FFN.decoder,
    max_position_embeddings: P,
    activation_function: s.act,
    scale_embedding: s.scale,
    is_encoder_decoder: true,
    pad_token_id: 1,
    bos_token_id: 0,
    eos_token_id: 2,
    // Marian starts the decoder from the pad token (OPUS-MT configs say so; MarianConfig's default is 58100).
    decoder_start_token_id: s.variant === 'marian' ? 1 : 2,
  };
}

/** Marian's sinusoids, in float64 as numpy computes them (then float32, as the stored parameter is). */
export function sinusoids(n: number, dim: number): Float32Array {
  const out = new Float32Array(n * dim);
  for (let pos = 0; pos < n; pos++) {
    for (let j = 0; j < dim / 2; j++) {
      const angle = pos / 10000 ** ((2 * j) / dim);
      out[pos * dim + j] = Math.sin(angle);
      out[pos * dim + dim / 2 + j] = Math.cos(angle);
    }
  }
  return out;
}

export function bartWeights(s: BartSpec, seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  const p = 'model.';
  w.add(`${p}shared.weight`, [V, D], 0.3);
  for (const stack of ['encoder', 'decoder'] as const) {
    if (s.variant !== 'marian') w.add(`${p}${stack}.embed_positions.weight`, [P + 2, D], 0.3);
    else if (s.storedPositions) w.set(`${p}${stack}.embed_positions.weight`, [P, D], sinusoids(P, D));
    if (s.variant !== 'marian') w.layerNorm(`${p}${stack}.layernorm_embedding`, D);
    const layers = stack === 'encoder' ? s.encoderLayers : s.decoderLayers;
    for (let i = 0; i < layers; i++) {
      const l = `${p}${stack}.layers.${i}`;
      for (const attn of stack === 'encoder' ? ['self_attn'] : ['self_attn', 'encoder_attn']) {
        for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) w.linear(`${l}.${attn}.${proj}`, D, D, 0.3);
        w.layerNorm(`${l}.${attn}_layer_norm`, D);
      }
      w.linear(`${l}.fc1`, D, FFN[stack], 0.3);
      w.linear(`${l}.fc2`, FFN[stack], D, 0.3);
      w.layerNorm(`${l}.final_layer_norm`, D);
    }
    if (s.variant === 'mbart') w.layerNorm(`${p}${stack}.layer_norm`, D);
  }
  w.add('final_logits_bias', [1, V], 0.05);
  return w;
}

/** modeling_bart.py (+ mBART's pre-norm and final norms, Marian's sinusoids and no embedding norm), in float64. */
export function bartReference(
  w: TinyWeights,
  s: BartSpec,
  encIds: readonly number[],
  decIds: readonly number[],
): Reference {
  const p = 'model.',
    eps = 1e-5,
    scale = 1 / Math.sqrt(d);
  const get = (n: string) => w.get(p + n);
  const lin = (x: Rows, n: string, nOut: number) => linear(x, get(`${n}.weight`), get(`${n}.bias`), nOut);
  const ln = (x: Rows, n: string) => layerNorm(x, get(`${n}.weight`), get(`${n}.bias`), eps);
  const table = s.variant === 'marian' ? sinusoids(P, D) : null;
  const embed = (stack: string, ids: readonly number[]) => {
    const tokens = scaleRows(gather(get('shared.weight'), D, ids), s.scale ? Math.sqrt(D) : 1);
    const positions = ids.map((_, i) => (table ? i : i + 2));
    const x = addRows(tokens, gather(table ?? get(`${stack}.embed_positions.weight`), D, positions));
    return s.variant === 'marian' ? x : ln(x, `${stack}.layernorm_embedding`);
  };
  const attention = (xq: Rows, xkv: Rows, n: string, masked: boolean, into: PartRef) => {
    const q = splitHeads(lin(xq, `${n}.q_proj`, D), H, d),
      k = splitHeads(lin(xkv, `${n}.k_proj`, D), H, d),
      v = splitHeads(lin(xkv, `${n}.v_proj`, D), H, d);
    const { probs, context } = attend(q, k, v, scale, masked ? causal : undefined);
    into.q.push(q);
    into.k.push(k);
    into.probs.push(probs);
    return lin(context, `${n}.out_proj`, D);
  };
  const block = (x: Rows, norm: string, f: (h: Rows) => Rows) =>
    s.variant === 'mbart' ? addRows(x, f(ln(x, norm))) : ln(addRows(x, f(x)), norm);
  const ffn = (x: Rows, l: string, width: number) => lin(activation(lin(x, `${l}.fc1`, width), s.act), `${l}.fc2`, D);

  const ref = emptyReference();
  let x = embed('encoder', encIds);
  for (let i = 0; i < s.encoderLayers; i++) {
    const l = `encoder.layers.${i}`;
    x = block(x, `${l}.self_attn_layer_norm`, (h) => attention(h, h, `${l}.self_attn`, false, ref.encoder));
    x = block(x, `${l}.final_layer_norm`, (h) => ffn(h, l, FFN.encoder));
  }
  if (s.variant === 'mbart') x = ln(x, 'encoder.layer_norm');
  let y = embed('decoder', decIds);
  for (let i = 0; i < s.decoderLayers; i++) {
    const l = `decoder.layers.${i}`;
    y = block(y, `${l}.self_attn_layer_norm`, (h) => attention(h, h, `${l}.self_attn`, true, ref.decoder));
    y = block(y, `${l}.encoder_attn_layer_norm`, (h) => attention(h, x, `${l}.encoder_attn`, false, ref.cross));
    y = block(y, `${l}.final_layer_norm`, (h) => ffn(h, l, FFN.decoder));
  }
  if (s.variant === 'mbart') y = ln(y, 'decoder.layer_norm');
  ref.encoderHidden = x;
  ref.decoderHidden = y;
  ref.logits = lastLogits(y, get('shared.weight'), w.get('final_logits_bias'), V);
  return ref;
}

// ---- T5 ---------------------------------------------------------------------------------------------------

export interface T5Spec {
  modelType: 't5' | 'mt5';
  layers: number;
  decoderLayers: number;
  dModel: number;
  dKv: number;
  dFf: number;
  proj: string;
  buckets: number;
  maxDistance: number;
  tied: boolean;
}
export const T5_V11: T5Spec = {
  modelType: 't5',
  layers: 2,
  decoderLayers: 3,
  dModel: 16,
  dKv: 6,
  dFf: 24,
  proj: 'gated-gelu',
  buckets: 8,
  maxDistance: 8,
  tied: false,
};
export const T5_V10: T5Spec = {
  modelType: 't5',
  layers: 2,
  decoderLayers: 2,
  dModel: 16,
  dKv: 4,
  dFf: 32,
  proj: 'relu',
  buckets: 32,
  maxDistance: 128,
  tied: true,
};
export const MT5: T5Spec = { ...T5_V11, modelType: 'mt5', layers: 1, decoderLayers: 1 };
export const T5_H = 4;

/** SentencePiece-style pieces: specials, whole words, then single characters (lower scores) for anything else. */
export const PIECES: [string, number][] = [
  ['<pad>', 0],
  ['</s>', 0],
  ['<unk>', 0],
  ...['The', 'cat', 'sat', 'on', 'the', 'mat', 'Le', 'chat', 'est', 'assis', 'sur', 'le', 'tapis', 'dog'].map(
    (word): [string, number] => [`▁${word}`, -2],
  ),
  ['▁', -4],
  ['.', -3],
  [',', -3],
  ...[...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'].map((ch): [string, number] => [ch, -6]),
];
export const T5_VOCAB = PIECES.length;

/**
 * A T5-like tokenizer.json: Unigram model, Metaspace pre-tokenizer, `A </s>` template (as t5-small's, without its
 * normalizer).
 */
export function t5TokenizerJson(): unknown {
  const metaspace = {
    type: 'Metaspace',
    replacement: '▁',
    add_prefix_space: true,
    prepend_scheme: 'always',
    split: true,
  };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [addedToken(0, '<pad>'), addedToken(1, '</s>'), addedToken(2, '<unk>')],
    normalizer: null,
    pre_tokenizer: metaspace,
    post_processor: templateProcessing(
      [sequence('A'), specialToken('</s>')],
      [sequence('A'), specialToken('</s>'), sequence('B'), specialToken('</s>')],
      { '</s>': 1 },
    ),
    decoder: metaspace,
    model: { type: 'Unigram', unk_id: 2, vocab: PIECES, byte_fallback: false },
  };
}

export function t5Config(s: T5Spec): Record<string, unknown> {
  return {
    architectures: ['T5ForConditionalGeneration'],
    model_type: s.modelType,
    vocab_size: T5_VOCAB,
    d_model: s.dModel,
    d_kv: s.dKv,
    d_ff: s.dFf,
    num_layers: s.layers,
    num_decoder_layers: s.decoderLayers,
    num_heads: T5_H,
    relative_attention_num_buckets: s.buckets,
    relative_attention_max_distance: s.maxDistance,
    layer_norm_epsilon: 1e-6,
    feed_forward_proj: s.proj,
    tie_word_embeddings: s.tied,
    is_encoder_decoder: true,
    pad_token_id: 0,
    eos_token_id: 1,
    decoder_start_token_id: 0,
    n_positions: 512,
  };
}

export function t5Weights(s: T5Spec, seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  const D = s.dModel,
    inner = T5_H * s.dKv;
  w.add('shared.weight', [T5_VOCAB, D], 1);
  const norm = (n: string) => w.add(`${n}.weight`, [D], 0.05, 1);
  const proj = (n: string, nIn: number, nOut: number) => w.add(`${n}.weight`, [nOut, nIn], 0.3);
  for (const stack of ['encoder', 'decoder'] as const) {
    const layers = stack === 'encoder' ? s.layers : s.decoderLayers;
    for (let i = 0; i < layers; i++) {
      const l = `${stack}.block.${i}.layer`;
      const attns = stack === 'encoder' ? ['0.SelfAttention'] : ['0.SelfAttention', '1.EncDecAttention'];
      for (const a of attns) {
        for (const x of ['q', 'k', 'v']) proj(`${l}.${a}.${x}`, D, inner);
        proj(`${l}.${a}.o`, inner, D);
      }
      if (i === 0) w.add(`${l}.0.SelfAttention.relative_attention_bias.weight`, [s.buckets, T5_H], 1);
      const ff = `${l}.${attns.length}.DenseReluDense`;
      if (s.proj.startsWith('gated')) {
        proj(`${ff}.wi_0`, D, s.dFf);
        proj(`${ff}.wi_1`, D, s.dFf);
      } else proj(`${ff}.wi`, D, s.dFf);
      proj(`${ff}.wo`, s.dFf, D);
      for (let k = 0; k <= attns.length; k++) norm(`${l}.${k}.layer_norm`);
    }
    norm(`${stack}.final_layer_norm`);
  }
  if (!s.tied) w.add('lm_head.weight', [T5_VOCAB, D], 0.3);
  return w;
}

/**
 * modeling_t5.py's _relative_position_bucket in plain float64 (the graph's table is relativePositionBucket,
 * float32 as torch; the two agree wherever float rounding cannot move a bucket: encoder-decoder.test.ts checks it).
 */
export function bucket64(relative: number, bidirectional: boolean, numBuckets: number, maxDistance: number): number {
  let result = 0,
    n = numBuckets;
  let r = relative;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (r > 0) result += n;
    r = Math.abs(r);
  } else r = -Math.min(r, 0);
  const maxExact = Math.floor(n / 2);
  if (r < maxExact) return result + r;
  const large = maxExact + Math.trunc((Math.log(r / maxExact) / Math.log(maxDistance / maxExact)) * (n - maxExact));
  return result + Math.min(large, n - 1);
}

/** modeling_t5.py in float64. */
export function t5Reference(
  w: TinyWeights,
  s: T5Spec,
  encIds: readonly number[],
  decIds: readonly number[],
): Reference {
  const D = s.dModel,
    dk = s.dKv,
    inner = T5_H * dk,
    eps = 1e-6;
  const rms = (x: Rows, n: string) => rmsNorm(x, w.get(`${n}.weight`), eps);
  const lin = (x: Rows, n: string, nOut: number) => linear(x, w.get(`${n}.weight`), null, nOut);
  const actName = s.proj === 'gated-gelu' ? 'gelu_new' : s.proj.split('-').at(-1)!;
  const bias = (stack: string, n: number, bidirectional: boolean): Rows[] => {
    const table = w.get(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`);
    return Array.from({ length: T5_H }, (_, h) =>
      Array.from({ length: n }, (_, i) =>
        Float64Array.from(
          { length: n },
          (_, j) => table[bucket64(j - i, bidirectional, s.buckets, s.maxDistance) * T5_H + h],
        ),
      ),
    );
  };
  // The scores plus the relative position bias b[h][i][j] (cross-attention: none), causal in the decoder.
  const t5Logit =
    (b: Rows[] | null, masked: boolean): Logit =>
    (z, h, i, j) =>
      masked && j > i ? -Infinity : z + (b ? b[h][i][j] : 0);
  const attention = (xq: Rows, xkv: Rows, n: string, b: Rows[] | null, masked: boolean, into: PartRef) => {
    const q = splitHeads(lin(xq, `${n}.q`, inner), T5_H, dk),
      k = splitHeads(lin(xkv, `${n}.k`, inner), T5_H, dk),
      v = splitHeads(lin(xkv, `${n}.v`, inner), T5_H, dk);
    const { probs, context } = attend(q, k, v, 1, t5Logit(b, masked));
    into.q.push(q);
    into.k.push(k);
    into.probs.push(probs);
    return lin(context, `${n}.o`, D);
  };
  const ff = (x: Rows, n: string) => {
    const h = s.proj.startsWith('gated')
      ? mulRows(activation(lin(x, `${n}.wi_0`, s.dFf), actName), lin(x, `${n}.wi_1`, s.dFf))
      : activation(lin(x, `${n}.wi`, s.dFf), actName);
    return lin(h, `${n}.wo`, D);
  };

  const ref: Reference = {
    ...emptyReference(),
    encoderBias: bias('encoder', encIds.length, true),
    decoderBias: bias('decoder', decIds.length, false),
  };
  let x = gather(w.get('shared.weight'), D, encIds);
  for (let i = 0; i < s.layers; i++) {
    const l = `encoder.block.${i}.layer`;
    const h = rms(x, `${l}.0.layer_norm`);
    x = addRows(x, attention(h, h, `${l}.0.SelfAttention`, ref.encoderBias!, false, ref.encoder));
    x = addRows(x, ff(rms(x, `${l}.1.layer_norm`), `${l}.1.DenseReluDense`));
  }
  x = rms(x, 'encoder.final_layer_norm');
  let y = gather(w.get('shared.weight'), D, decIds);
  for (let i = 0; i < s.decoderLayers; i++) {
    const l = `decoder.block.${i}.layer`;
    const h = rms(y, `${l}.0.layer_norm`);
    y = addRows(y, attention(h, h, `${l}.0.SelfAttention`, ref.decoderBias!, true, ref.decoder));
    y = addRows(y, attention(rms(y, `${l}.1.layer_norm`), x, `${l}.1.EncDecAttention`, null, false, ref.cross));
    y = addRows(y, ff(rms(y, `${l}.2.layer_norm`), `${l}.2.DenseReluDense`));
  }
  y = rms(y, 'decoder.final_layer_norm');
  ref.encoderHidden = x;
  ref.decoderHidden = y;
  ref.logits = s.tied
    ? lastLogits(scaleRows(y, D ** -0.5), w.get('shared.weight'), null, T5_VOCAB)
    : lastLogits(y, w.get('lm_head.weight'), null, T5_VOCAB);
  return ref;
}

export async function writeT5(
  s: T5Spec,
  w: TinyWeights,
  rename?: (n: string) => string | null,
  config = t5Config(s),
): Promise<string> {
  const dir = await writeTinyModel(config, w, 'bert-tiny', { rename });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(t5TokenizerJson()));
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ eos_token: '</s>', unk_token: '<unk>', pad_token: '<pad>', model_max_length: 512 }),
  );
  return dir;
}
