/**
 * The engine: source → folder → config, weights, tokenizer → ONNX graph → onnxruntime session → Attention.
 * `loadModel` builds the session once; `model.attention(text)` runs it. No global state: two models
 * loaded side by side are independent.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Attention, Tensor } from './core/attention.js';
import { AttnvizError, check } from './core/errors.js';
import { GraphBuilder } from './graph/builder.js';
import { familyFor } from './graph/families.js';
import { HIDDEN_LAST, INPUTS, outputNames, type Family, type ModelDims } from './graph/family.js';
import { readConfig } from './models/config.js';
import { parseHubId, resolveHubModel } from './models/hub.js';
import { loadTokenizer, type Encoded, type TextTokenizer } from './models/tokenizer.js';
import { Weights } from './models/weights.js';
import { Session, type Feed, type RunOutput } from './runtime/session.js';

export interface LoadOptions {
  /** onnxruntime intra-op threads (default: its own choice, the physical cores). */
  threads?: number;
  /** Environment for hub-cache lookups (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Download progress on a terminal (default true). */
  progress?: boolean;
  /**
   * false builds the plain forward pass with no attention outputs (the benchmark's baseline);
   * `attention()` is then unavailable and only `forward()` runs.
   */
  extract?: boolean;
}

export interface AttentionOptions {
  /** Second text of a sentence pair. */
  pair?: string | null;
  /** Cut inputs longer than the model's positions instead of failing. */
  truncate?: boolean;
}

export class Model {
  private constructor(
    /** What the user passed to loadModel. */
    readonly source: string,
    /** The model folder it resolved to. */
    readonly dir: string,
    readonly family: Family<ModelDims>,
    readonly dims: ModelDims,
    readonly tokenizer: TextTokenizer,
    private readonly session: Session,
    readonly weightBytes: number,
  ) {}

  static async load(source: string, options: LoadOptions = {}): Promise<Model> {
    const dir = await resolveSource(source, options);
    const config = await readConfig(dir);
    const family = familyFor(config);
    const dims = family.readConfig(config);
    const [weights, tokenizer] = await Promise.all([Weights.open(dir), loadTokenizer(dir, family.modelType)]);
    const g = new GraphBuilder(weights);
    family.build(g, weights, dims, { extract: options.extract ?? true });
    const session = await Session.create(g.toBytes(), weights.root, { threads: options.threads });
    return new Model(source, dir, family, dims, tokenizer, session, weights.byteLength());
  }

  /** Tokenizes `text` (and `pair`) and returns every layer's and head's attention, q and k. */
  async attention(text: string, options: AttentionOptions = {}): Promise<Attention> {
    check(this.session.outputNames.includes(outputNames(0).probs), 'this model was loaded with extract: false');
    const encoded = this.encode(text, options);
    const out = await this.session.run(this.feeds(encoded));
    const { layers } = this.dims;
    return {
      tokens: encoded.tokens,
      text,
      pair: options.pair ?? null,
      sentenceBStart: encoded.sentenceBStart,
      model: { source: this.source, modelType: this.family.modelType },
      causal: this.family.causal,
      attention: stack(out, layers, (i) => outputNames(i).probs),
      query: stack(out, layers, (i) => outputNames(i).q),
      key: stack(out, layers, (i) => outputNames(i).k),
      hiddenLast: out[HIDDEN_LAST],
      inputIds: encoded.ids,
    };
  }

  /** The forward pass alone: the last hidden state `[T, hidden]`. */
  async forward(text: string, options: AttentionOptions = {}): Promise<Tensor> {
    const out = await this.session.run(this.feeds(this.encode(text, options)));
    return out[HIDDEN_LAST];
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  private encode(text: string, options: AttentionOptions): Encoded {
    const encoded = this.tokenizer.encode(text, options.pair ?? null);
    const max = this.dims.maxPositions;
    if (encoded.ids.length <= max) return encoded;
    check(options.truncate, `text is ${encoded.ids.length} tokens but ${this.source} takes at most ${max} positions (pass --truncate / { truncate: true } to cut it)`);
    return truncate(encoded, max);
  }

  /** The standard inputs (family.ts) that this model's graph declares. */
  private feeds(e: Encoded): Record<string, Feed> {
    const T = e.ids.length;
    const all: Record<string, () => Feed> = {
      [INPUTS.inputIds]: () => ({ type: 'int64', data: BigInt64Array.from(e.ids, BigInt), dims: [T] }),
      [INPUTS.positionIds]: () => ({ type: 'int64', data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)), dims: [T] }),
      [INPUTS.tokenTypeIds]: () => ({ type: 'int64', data: BigInt64Array.from(e.typeIds, BigInt), dims: [T] }),
      [INPUTS.causalMask]: () => ({ type: 'float32', data: causalMask(T), dims: [T, T] }),
    };
    const feeds: Record<string, Feed> = {};
    for (const name of this.session.inputNames) {
      const make = all[name];
      if (!make) throw new Error(`graph input ${name} has no feed`);
      feeds[name] = make();
    }
    return feeds;
  }
}

export function loadModel(source: string, options?: LoadOptions): Promise<Model> {
  return Model.load(source, options);
}

/** A local folder if one exists at `source`, else a hub id resolved through the Hugging Face cache. */
async function resolveSource(source: string, options: LoadOptions): Promise<string> {
  check(source.trim() !== '', 'no model given');
  const local = resolve(source);
  if (existsSync(local)) {
    check(statSync(local).isDirectory(), `${source}: not a folder (a model is a Hugging Face folder with config.json, or a hub id)`);
    return local;
  }
  if (!parseHubId(source)) throw new AttnvizError(`${source}: no such folder, and not a hub id (org/name or org/name@revision)`);
  return resolveHubModel(source, { env: options.env, progress: options.progress });
}

/**
 * Cuts an encoding to `max` tokens as transformers' default `longest_first` does: one token at a time from
 * the end of the longer text (the second on a tie), never a special token, so [CLS]/[SEP] stay in place.
 */
function truncate(e: Encoded, max: number): Encoded {
  const b = e.sentenceBStart ?? e.ids.length;
  const content = (from: number, to: number) => e.ids.map((_, i) => i).filter((i) => i >= from && i < to && !e.special[i]);
  const a = content(0, b), bb = content(b, e.ids.length);
  const dropped = new Set<number>();
  for (let excess = e.ids.length - max; excess > 0; excess--) {
    const from = a.length > bb.length ? a : bb.length > 0 ? bb : a;
    check(from.length > 0, `cannot truncate to ${max} tokens: only special tokens would remain`);
    dropped.add(from.pop()!);
  }
  const keep = <T>(xs: readonly T[]) => xs.filter((_, i) => !dropped.has(i));
  const droppedFromA = [...dropped].filter((i) => i < b).length;
  return {
    ids: keep(e.ids),
    tokens: keep(e.tokens),
    typeIds: keep(e.typeIds),
    special: keep(e.special),
    sentenceBStart: e.sentenceBStart === null ? null : e.sentenceBStart - droppedFromA,
  };
}

/** Additive mask: 0 on and below the diagonal, -inf above, so softmax gives exact zeros for future tokens. */
function causalMask(T: number): Float32Array {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) m.fill(-Infinity, i * T + i + 1, (i + 1) * T);
  return m;
}

/** Concatenates per-layer outputs `[H, …]` into one `[L, H, …]` tensor. */
function stack(out: Record<string, RunOutput>, layers: number, name: (layer: number) => string): Tensor {
  const first = out[name(0)];
  const size = first.data.length;
  const data = new Float32Array(layers * size);
  for (let i = 0; i < layers; i++) data.set(out[name(i)].data, i * size);
  return { dims: [layers, ...first.dims], data };
}
