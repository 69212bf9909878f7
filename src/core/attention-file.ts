/**
 * The attention file: attnviz's exchange format (docs/attention-file.md), a safetensors file with F32
 * tensors `attention` [L,H,T,T], optional `query`/`key` [L,H,T,d], `hidden_last` [T,D], `input_ids` [T]
 * (I32 or I64), and a `__metadata__` key `attnviz` holding JSON metadata (tokens, texts, model, causal, version).
 */
import { AttnvizError, check } from './errors.js';
import type { Attention, Tensor } from './attention.js';
import { decodeHeader, encodeSafetensors, readSafetensors, writeFileAtomic, type TensorEntry, type TensorToWrite } from './safetensors.js';
import { basename } from 'node:path';

export const FORMAT_VERSION = 1;

/** The JSON stored under `__metadata__.attnviz`. Fields use snake_case, as PyTorch writers will. */
export interface AttentionFileMetadata {
  version: number;
  tokens: string[];
  text: string;
  pair: string | null;
  sentence_b_start: number | null;
  model: { source: string; model_type: string };
  causal: boolean;
  /** Grouped-query attention: key/value heads; `key` holds per query head h the key of kv head ⌊h·kv_heads/heads⌋. */
  kv_heads?: number;
  /** Rotary models: 'half' (HF order of q/k dims) or 'interleaved' (Meta / llama2.c / GGUF order). */
  rotary?: 'half' | 'interleaved';
}

export function encodeAttentionFile(a: Attention): Buffer {
  const meta: AttentionFileMetadata = {
    version: FORMAT_VERSION,
    tokens: a.tokens,
    text: a.text,
    pair: a.pair,
    sentence_b_start: a.sentenceBStart,
    model: { source: a.model.source, model_type: a.model.modelType },
    causal: a.causal,
    ...(a.kvHeads !== undefined ? { kv_heads: a.kvHeads } : {}),
    ...(a.rotary !== undefined ? { rotary: a.rotary } : {}),
  };
  const tensors: Record<string, TensorToWrite> = { attention: f32(a.attention) };
  if (a.query) tensors.query = f32(a.query);
  if (a.key) tensors.key = f32(a.key);
  if (a.hiddenLast) tensors.hidden_last = f32(a.hiddenLast);
  if (a.inputIds) tensors.input_ids = { dtype: 'I64', shape: [a.inputIds.length], data: BigInt64Array.from(a.inputIds, BigInt) };
  return encodeSafetensors(tensors, { attnviz: JSON.stringify(meta) });
}

export async function writeAttentionFile(path: string, a: Attention): Promise<void> {
  await writeFileAtomic(path, encodeAttentionFile(a));
}

export async function readAttentionFile(path: string): Promise<Attention> {
  const { bytes } = await readSafetensors(path);
  return decodeAttentionFile(bytes, basename(path));
}

/** Decodes an attention file image; `what` names it in errors. */
export function decodeAttentionFile(bytes: Uint8Array, what: string): Attention {
  const header = decodeHeader(bytes, what);
  const meta = readMetadata(header.metadata, what);
  check(Array.isArray(meta.tokens) && meta.tokens.every((t) => typeof t === 'string'), `${what}: metadata "tokens" must be a list of strings`);
  const tokens = meta.tokens;
  const T = tokens.length;

  const tensor = (name: string, rank: number, check4: (dims: number[]) => boolean): Tensor | undefined => {
    const e = header.tensors.get(name);
    if (!e) return undefined;
    check(e.dtype === 'F32', `${what}: tensor "${name}" must be F32, is ${e.dtype}`);
    check(e.shape.length === rank && check4(e.shape), `${what}: tensor "${name}" has shape [${e.shape.join(', ')}], which does not fit ${T} tokens`);
    return { dims: e.shape, data: readF32(bytes, e) };
  };
  const attention = tensor('attention', 4, ([, , q, k]) => q === T && k === T);
  check(attention, `${what}: no "attention" tensor`);
  const [L, H] = attention.dims;
  const qk = (d: number[]) => d[0] === L && d[1] === H && d[2] === T;
  const query = tensor('query', 4, qk);
  const key = tensor('key', 4, qk);
  check(!query === !key && (!query || query.dims[3] === key!.dims[3]), `${what}: "query" and "key" must both be present with the same head size`);
  const hiddenLast = tensor('hidden_last', 2, ([t]) => t === T);

  const ints = (name: string): number[] | undefined => {
    const e = header.tensors.get(name);
    if (!e) return undefined;
    check((e.dtype === 'I64' || e.dtype === 'I32') && e.shape.length === 1 && e.shape[0] === T,
      `${what}: tensor "${name}" must be I64 or I32 [${T}], is ${e.dtype} [${e.shape.join(', ')}]`);
    const view = new DataView(bytes.buffer, bytes.byteOffset + e.offset, e.byteLength);
    return Array.from({ length: T }, (_, i) => (e.dtype === 'I64' ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true)));
  };
  const inputIds = ints('input_ids');
  // Without sentence_b_start, a BERT-style writer's token_type_ids still tell where sentence B begins.
  const firstB = ints('token_type_ids')?.indexOf(1) ?? -1;
  const sentenceBStart = meta.sentence_b_start ?? (firstB > 0 ? firstB : null);
  check(sentenceBStart === null || (Number.isInteger(sentenceBStart) && sentenceBStart >= 0 && sentenceBStart <= T),
    `${what}: metadata "sentence_b_start" must be null or a token index`);
  return {
    tokens,
    text: typeof meta.text === 'string' ? meta.text : '',
    pair: typeof meta.pair === 'string' ? meta.pair : null,
    sentenceBStart,
    model: { source: meta.model?.source ?? '', modelType: meta.model?.model_type ?? '' },
    causal: meta.causal === true,
    attention,
    ...(query && key ? { query, key } : {}),
    ...(hiddenLast ? { hiddenLast } : {}),
    ...(inputIds ? { inputIds } : {}),
    ...(Number.isInteger(meta.kv_heads) && meta.kv_heads! > 0 && H % meta.kv_heads! === 0 ? { kvHeads: meta.kv_heads } : {}),
    ...(meta.rotary === 'half' || meta.rotary === 'interleaved' ? { rotary: meta.rotary } : {}),
  };
}

/**
 * The `attnviz` JSON entry; failing that, metadata stored one JSON string per field (`tokens`, `text`,
 * `text_pair`), the layout of ../shared/golden/cases and of simple PyTorch writers.
 */
function readMetadata(metadata: Record<string, string>, what: string): Partial<AttentionFileMetadata> {
  const parse = (key: string): unknown => {
    try {
      return JSON.parse(metadata[key]);
    } catch (e) {
      throw new AttnvizError(`${what}: __metadata__.${key} is not valid JSON (${(e as Error).message})`);
    }
  };
  if (metadata.attnviz !== undefined) return parse('attnviz') as Partial<AttentionFileMetadata>;
  check(metadata.tokens !== undefined, `${what}: no "attnviz" entry in __metadata__ (not an attention file; see docs/attention-file.md)`);
  const field = (key: string) => (metadata[key] === undefined ? undefined : parse(key));
  return { tokens: field('tokens') as string[], text: field('text') as string, pair: (field('text_pair') ?? null) as string | null };
}

function f32(t: Tensor): TensorToWrite {
  return { dtype: 'F32', shape: t.dims, data: t.data };
}

/** Copies a tensor out of the file image (its offset need not be 4-byte aligned). */
function readF32(bytes: Uint8Array, e: TensorEntry): Float32Array {
  const out = new Float32Array(e.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes.subarray(e.offset, e.offset + e.byteLength));
  return out;
}
