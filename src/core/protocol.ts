/**
 * The attention payload of POST /api/attention (docs/server-api.md), shared by the server and the app:
 * browser-safe, no Node imports.
 *
 * - `avz1`: one AVZ1 blob (core/encode.ts) holding the whole Attention.
 * - `avz1-layers`: a stream of frames, each a u32 little-endian byte length then an AVZ1 blob holding one
 *   layer (attention `[1, H, T, T]`, q/k `[1, H, T, d]`), layers in order. The client can draw layer 0
 *   while later layers are still on the wire. A frame length of 0xFFFFFFFF announces an error instead: a
 *   u32 length and that many bytes of JSON `{ status, message }` follow, and the stream ends.
 * - `avz1-overview`: the same frames, each holding one layer max-pooled to at most OVERVIEW_CELLS × OVERVIEW_CELLS
 *   per head (attention `[1, H, n, m]`, no q/k; the blob's tokens are all T of them). Long inputs go as this
 *   overview first and single heads at full resolution on demand (`layers` / `heads` in the request), so the
 *   page never holds every layer × head × T² at once.
 */
import type { Attention, Tensor } from './attention.js';

export const FORMAT_HEADER = 'x-attnviz-format';
export const LAYERS_HEADER = 'x-attnviz-layers';
export const TOKENS_HEADER = 'x-attnviz-tokens';
export type PayloadFormat = 'avz1' | 'avz1-layers' | 'avz1-overview';
export const ERROR_FRAME = 0xffffffff;

/** `detail` of an attention request: everything, the pooled overview, or the overview past a size. */
export const DETAILS = ['full', 'overview', 'auto'] as const;
export type Detail = (typeof DETAILS)[number];

/**
 * The overview's resolution per head and side: 128 cells keep a thumbnail (≤ 128 device px in the model view)
 * exact and make the overview of 32 layers × 32 heads 16.8M values (25 MB at 1.5 bytes), whatever T is.
 */
export const OVERVIEW_CELLS = 128;

/** The heads `heads` of the layers `layers` of `a` (attention, q and k), in the order given. */
export function selectHeads(a: Attention, layers: readonly number[], heads: readonly number[]): Attention {
  const pick = (t: Tensor | undefined): Tensor | undefined => {
    if (!t) return undefined;
    const [, H, ...rest] = t.dims;
    const size = rest.reduce((x, y) => x * y, 1);
    const data = new Float32Array(layers.length * heads.length * size);
    layers.forEach((l, i) =>
      heads.forEach((h, j) =>
        data.set(t.data.subarray((l * H + h) * size, (l * H + h + 1) * size), (i * heads.length + j) * size),
      ),
    );
    return { dims: [layers.length, heads.length, ...rest], data };
  };
  const { query, key, hiddenLast: _h, positionBias: _p, ...rest } = a;
  const q = pick(query),
    k = pick(key);
  return { ...rest, attention: pick(a.attention)!, ...(q && k ? { query: q, key: k } : {}) };
}

/** Layer `l` of `a` as an Attention of one layer. */
export function layerOf(a: Attention, l: number): Attention {
  const slice = (t: Tensor | undefined): Tensor | undefined => {
    if (!t) return undefined;
    const size = t.data.length / t.dims[0];
    return { dims: [1, ...t.dims.slice(1)], data: t.data.subarray(l * size, (l + 1) * size) };
  };
  const { query, key, hiddenLast: _, ...rest } = a;
  return { ...rest, attention: slice(a.attention)!, ...(query && key ? { query: slice(query), key: slice(key) } : {}) };
}

/** Stacks one-layer Attentions (as layerOf makes them) back into one. */
export function joinLayers(layers: Attention[]): Attention {
  const join = (pick: (a: Attention) => Tensor | undefined): Tensor | undefined => {
    const parts = layers.map(pick);
    if (parts.some((p) => !p)) return undefined;
    const size = parts[0]!.data.length;
    const data = new Float32Array(size * parts.length);
    parts.forEach((p, i) => data.set(p!.data, i * size));
    return { dims: [parts.length, ...parts[0]!.dims.slice(1)], data };
  };
  const query = join((a) => a.query),
    key = join((a) => a.key);
  return { ...layers[0], attention: join((a) => a.attention)!, ...(query && key ? { query, key } : {}) };
}

/** A u32 length prefix followed by `bytes`. */
export function frame(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length, true);
  out.set(bytes, 4);
  return out;
}

/** The error frame: ERROR_FRAME, then a length-prefixed JSON error. */
export function errorFrame(status: number, message: string): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify({ status, message }));
  const out = new Uint8Array(8 + json.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, ERROR_FRAME, true);
  view.setUint32(4, json.length, true);
  out.set(json, 8);
  return out;
}

/** A stream error frame, as thrown by FrameReader. */
export class FrameError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Splits incoming chunks into frames: push() each chunk, get the complete frames it finished. */
export class FrameReader {
  private buffer = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    const frames: Uint8Array[] = [];
    let at = 0;
    for (;;) {
      if (joined.length - at < 4) break;
      const view = new DataView(joined.buffer, joined.byteOffset + at);
      const length = view.getUint32(0, true);
      if (length === ERROR_FRAME) {
        if (joined.length - at < 8) break;
        const n = view.getUint32(4, true);
        if (joined.length - at < 8 + n) break;
        const { status, message } = JSON.parse(new TextDecoder().decode(joined.subarray(at + 8, at + 8 + n))) as {
          status: number;
          message: string;
        };
        throw new FrameError(status, message);
      }
      if (joined.length - at < 4 + length) break;
      frames.push(joined.slice(at + 4, at + 4 + length));
      at += 4 + length;
    }
    this.buffer = joined.slice(at);
    return frames;
  }

  /** True when no partial frame is pending (the stream ended cleanly). */
  get empty(): boolean {
    return this.buffer.length === 0;
  }
}

// The API's JSON shapes, shared by the server and the app.

export interface ModelEntry {
  /** What requests pass as `model`. */
  id: string;
  label: string;
  kind: 'embedded' | 'folder' | 'hub-cache';
  /** hf: Hugging Face folder (config.json), tfjs: TF.js graph model, gguf: a .gguf file. */
  format: 'hf' | 'tfjs' | 'gguf';
}

/** What the app shows about a loaded model. */
export interface LoadedModelInfo {
  id: string;
  modelType: string;
  layers: number;
  heads: number;
  maxPositions: number;
  causal: boolean;
  weightBytes: number;
  /** Encoder-decoder models (BART, T5, …): attention requests must give a target text, and none other may. */
  encoderDecoder: boolean;
  /** A decoder with a language-model head: POST /api/generate continues a text with it. */
  generate: boolean;
}

/** POST /api/tokens: how many tokens a text (and pair) make for a model, and how many it takes. */
export interface TokenCount {
  tokens: number;
  /** The model's positions: longer inputs are refused unless `truncate`. */
  maxTokens: number;
}

/** Every error answer. A text with more tokens than the model takes adds `code` and the figures. */
export interface ErrorBody {
  status: number;
  message: string;
  code?: 'too-many-tokens';
  /** Which input: "text" (with its pair) or "target". */
  field?: 'text' | 'target';
  tokens?: number;
  maxTokens?: number;
}

export interface Progress {
  phase: 'resolve' | 'download' | 'load';
  message: string;
  file?: string;
  loaded?: number;
  total?: number;
}
