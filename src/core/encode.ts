/**
 * A compact binary encoding of an Attention for pages (standalone HTML, the app's server responses).
 * BertViz embeds JSON floats twice, 46 bytes per value; here attention takes 12 bits per value (1.5 bytes,
 * exactly 2 in base64) and q/k 16 bits (IEEE half precision).
 *
 * Attention is stored as round(√a · 4095): the square root spends the levels where attention lives (small
 * weights), so the error is below 6e-8 near 0 and at most 2.5e-4 near 1 — invisible as opacity and exact
 * to three decimals in tooltips.
 *
 * Encoder-decoder results add the decoder's attentions as sections of their own (same encodings), and T5's
 * position biases in float32 (the neuron view adds them to q·k, where a float16 error would show).
 *
 * Layout: "AVZ1", u32 header length, header JSON (UTF-8), then each section at a 4-byte-aligned offset.
 * Browser-safe: no Node imports. Compression, if any, is the caller's (deflate-raw both sides).
 */
import type { Attention, EncoderDecoderAttention, Tensor } from './attention.js';
import { AttnvizError, check } from './errors.js';
import { f16ToF32, f32BitsToF16 } from './half.js';

const MAGIC = 'AVZ1';
const Q = 4095;

type Encoding = 'sqrt12' | 'f16' | 'f32';

type SectionName =
  | 'attention'
  | 'query'
  | 'key'
  | 'position_bias'
  | 'decoder_attention'
  | 'cross_attention'
  | 'decoder_query'
  | 'decoder_key'
  | 'cross_query'
  | 'cross_key'
  | 'decoder_position_bias'
  | 'layer_position_bias';

/**
 * Sections of an encoder-decoder result's decoder side: name → EncoderDecoderAttention field, encoding, and whether it
 * is q/k data.
 */
const DECODER_SECTIONS: [
  SectionName,
  keyof EncoderDecoderAttention &
    ('decoder' | 'cross' | 'decoderQuery' | 'decoderKey' | 'crossQuery' | 'crossKey' | 'decoderPositionBias'),
  Encoding,
  boolean,
][] = [
  ['decoder_attention', 'decoder', 'sqrt12', false],
  ['cross_attention', 'cross', 'sqrt12', false],
  ['decoder_query', 'decoderQuery', 'f16', true],
  ['decoder_key', 'decoderKey', 'f16', true],
  ['cross_query', 'crossQuery', 'f16', true],
  ['cross_key', 'crossKey', 'f16', true],
  ['decoder_position_bias', 'decoderPositionBias', 'f32', true],
];

interface Section {
  name: SectionName;
  encoding: Encoding;
  dims: number[];
  offset: number;
  byteLength: number;
}

interface Header {
  tokens: string[];
  text: string;
  pair: string | null;
  sentenceBStart: number | null;
  promptLength?: number;
  model: { source: string; modelType: string };
  causal: boolean;
  inputIds?: number[];
  special?: boolean[];
  keyTokens?: string[];
  keySpecial?: boolean[];
  scoreScale?: number;
  rotary?: 'half' | 'interleaved';
  attnLogitSoftcapping?: number;
  layerWindows?: (readonly [number, number] | null)[];
  encoderDecoder?: { decoderTokens: string[]; target: string; decoderInputIds?: number[]; decoderSpecial?: boolean[] };
  sections: Section[];
}

export interface EncodeOptions {
  /**
   * Include q and k and position biases (the neuron view needs them; head and model views do not). Default true when
   * present.
   */
  queryKey?: boolean;
}

export function encodeAttention(a: Attention, options: EncodeOptions = {}): Uint8Array {
  const withQK = options.queryKey ?? true;
  const tensors: [Section['name'], Tensor, Encoding][] = [['attention', a.attention, 'sqrt12']];
  if (withQK && a.query && a.key) tensors.push(['query', a.query, 'f16'], ['key', a.key, 'f16']);
  if (withQK && a.positionBias) tensors.push(['position_bias', a.positionBias, 'f32']);
  if (withQK && a.layerPositionBias) tensors.push(['layer_position_bias', a.layerPositionBias, 'f32']);
  const ed = a.encoderDecoder;
  if (ed)
    for (const [name, field, enc, qk] of DECODER_SECTIONS)
      if (ed[field] && (withQK || !qk)) tensors.push([name, ed[field], enc]);
  const pack = (t: Tensor, enc: Encoding) =>
    enc === 'sqrt12' ? packSqrt12(t.data) : enc === 'f16' ? packF16(t.data) : new Uint8Array(t.data.slice().buffer);
  const payloads = tensors.map(([, t, enc]) => pack(t, enc));
  const sections: Section[] = [];
  let offset = 0;
  tensors.forEach(([name, t, encoding], i) => {
    sections.push({ name, encoding, dims: [...t.dims], offset, byteLength: payloads[i].length });
    offset = align4(offset + payloads[i].length);
  });
  const header: Header = {
    tokens: a.tokens,
    text: a.text,
    pair: a.pair,
    sentenceBStart: a.sentenceBStart,
    ...(a.promptLength !== undefined ? { promptLength: a.promptLength } : {}),
    model: a.model,
    causal: a.causal,
    ...(a.inputIds ? { inputIds: a.inputIds } : {}),
    ...(a.special ? { special: a.special } : {}),
    ...(a.keyTokens ? { keyTokens: a.keyTokens } : {}),
    ...(a.keySpecial ? { keySpecial: a.keySpecial } : {}),
    ...(a.scoreScale !== undefined ? { scoreScale: a.scoreScale } : {}),
    ...(a.rotary ? { rotary: a.rotary } : {}),
    ...(a.attnLogitSoftcapping !== undefined ? { attnLogitSoftcapping: a.attnLogitSoftcapping } : {}),
    ...(a.layerWindows ? { layerWindows: a.layerWindows } : {}),
    ...(ed
      ? {
          encoderDecoder: {
            decoderTokens: ed.decoderTokens,
            target: ed.target,
            ...(ed.decoderInputIds ? { decoderInputIds: ed.decoderInputIds } : {}),
            ...(ed.decoderSpecial ? { decoderSpecial: ed.decoderSpecial } : {}),
          },
        }
      : {}),
    sections,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const start = align4(8 + json.length);
  const out = new Uint8Array(start + offset);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(4, json.length, true);
  out.set(json, 8);
  sections.forEach((s, i) => out.set(payloads[i], start + s.offset));
  return out;
}

export function decodeAttention(bytes: Uint8Array): Attention {
  check(
    bytes.length >= 8 && new TextDecoder().decode(bytes.subarray(0, 4)) === MAGIC,
    'not attnviz binary data (bad magic)',
  );
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  check(8 + length <= bytes.length, 'attnviz binary data is truncated');
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  } catch (e) {
    throw new AttnvizError(`attnviz binary header is not JSON (${(e as Error).message})`);
  }
  const start = align4(8 + length);
  const tensor = (name: Section['name']): Tensor | undefined => {
    const s = header.sections.find((x) => x.name === name);
    if (!s) return undefined;
    const count = s.dims.reduce((x, y) => x * y, 1);
    check(start + s.offset + s.byteLength <= bytes.length, `attnviz binary data: section ${name} is truncated`);
    const raw = bytes.subarray(start + s.offset, start + s.offset + s.byteLength);
    const data =
      s.encoding === 'sqrt12'
        ? unpackSqrt12(raw, count)
        : s.encoding === 'f16'
          ? unpackF16(raw, count)
          : new Float32Array(raw.slice().buffer, 0, count);
    return { dims: s.dims, data };
  };
  const attention = tensor('attention');
  check(attention, 'attnviz binary data has no attention');
  const query = tensor('query'),
    key = tensor('key'),
    positionBias = tensor('position_bias'),
    layerPositionBias = tensor('layer_position_bias');
  let encoderDecoder: EncoderDecoderAttention | undefined;
  if (header.encoderDecoder) {
    const decoder = tensor('decoder_attention'),
      cross = tensor('cross_attention');
    check(decoder && cross, 'attnviz binary data: encoder-decoder data without decoder or cross attention');
    encoderDecoder = { ...header.encoderDecoder, decoder, cross };
    for (const [name, field] of DECODER_SECTIONS.slice(2)) {
      const t = tensor(name);
      if (t) encoderDecoder[field] = t;
    }
  }
  return {
    tokens: header.tokens,
    text: header.text,
    pair: header.pair,
    sentenceBStart: header.sentenceBStart,
    ...(header.promptLength !== undefined ? { promptLength: header.promptLength } : {}),
    model: header.model,
    causal: header.causal,
    attention,
    ...(query && key ? { query, key } : {}),
    ...(header.inputIds ? { inputIds: header.inputIds } : {}),
    ...(header.special ? { special: header.special } : {}),
    ...(header.keyTokens ? { keyTokens: header.keyTokens } : {}),
    ...(header.keySpecial ? { keySpecial: header.keySpecial } : {}),
    ...(header.scoreScale !== undefined ? { scoreScale: header.scoreScale } : {}),
    ...(header.rotary ? { rotary: header.rotary } : {}),
    ...(header.attnLogitSoftcapping !== undefined ? { attnLogitSoftcapping: header.attnLogitSoftcapping } : {}),
    ...(header.layerWindows ? { layerWindows: header.layerWindows } : {}),
    ...(positionBias ? { positionBias } : {}),
    ...(layerPositionBias ? { layerPositionBias } : {}),
    ...(encoderDecoder ? { encoderDecoder } : {}),
  };
}

const align4 = (n: number) => (n + 3) & ~3;

/** Two values per three bytes. */
function packSqrt12(values: Float32Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 2) * 3);
  const q = (v: number) => Math.round(Math.sqrt(Math.min(1, Math.max(0, v))) * Q);
  for (let i = 0, o = 0; i < values.length; i += 2, o += 3) {
    const a = q(values[i]),
      b = i + 1 < values.length ? q(values[i + 1]) : 0;
    out[o] = a & 255;
    out[o + 1] = (a >> 8) | ((b & 15) << 4);
    out[o + 2] = b >> 4;
  }
  return out;
}

function unpackSqrt12(bytes: Uint8Array, count: number): Float32Array {
  const table = new Float32Array(Q + 1);
  for (let v = 0; v <= Q; v++) table[v] = (v / Q) ** 2;
  const out = new Float32Array(count);
  for (let i = 0, o = 0; i < count; i += 2, o += 3) {
    out[i] = table[bytes[o] | ((bytes[o + 1] & 15) << 8)];
    if (i + 1 < count) out[i + 1] = table[(bytes[o + 1] >> 4) | (bytes[o + 2] << 4)];
  }
  return out;
}

function packF16(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1),
    u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i];
    out[i] = f32BitsToF16(u[0]);
  }
  return new Uint8Array(out.buffer);
}

function unpackF16(bytes: Uint8Array, count: number): Float32Array {
  const h = new Uint16Array(bytes.slice().buffer, 0, count);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = f16ToF32(h[i]);
  return out;
}
