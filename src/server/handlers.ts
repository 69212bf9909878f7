/**
 * The API endpoints (docs/server-api.md). Each handler reads and checks its request, then answers; errors
 * are thrown as HttpError/AttnvizError and answered as JSON by server.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Attention, AttentionHeader, AttentionStream } from '../core/attention.js';
import { encodeAttentionFile } from '../core/attention-file.js';
import { encodeAttention } from '../core/encode.js';
import { renderHtml } from '../export/html.js';
import { VIEWS, type ViewName } from '../views/mount.js';
import { maxPoolHeads } from '../views/raster.js';
import { onlyFields, optionalBoolean, optionalString, readJsonBody } from './body.js';
import { AttnvizError } from '../core/errors.js';
import { collect, stackedFor } from '../models/layer-stream.js';
import { eventStream } from './events.js';
import { HttpError, messageOf, sendJson, statusOf } from './http-error.js';
import type { ModelCache } from './model-cache.js';
import { describeModel, listModels, modelKey, parseModelSpec } from './models.js';
import type { Progress, TokenCount } from '../core/protocol.js';
import {
  DETAILS,
  errorFrame,
  FORMAT_HEADER,
  frame,
  layerOf,
  LAYERS_HEADER,
  OVERVIEW_CELLS,
  selectHeads,
  TOKENS_HEADER,
  type Detail,
  type PayloadFormat,
} from '../core/protocol.js';

export interface Limits {
  /** Longest text, pair or target, in characters (default 40 000: about 8k tokens of English). */
  maxTextChars: number;
  /** Largest request body, in bytes (default 1 MiB: three texts at the limit, JSON-escaped). */
  maxBodyBytes: number;
  /** Longest a request may wait for its model and its run, in ms (default 60 s); then 503. */
  requestTimeoutMs: number;
  /** Estimated bytes of loaded models before least recently used ones are released (default 4 GiB). */
  memoryCapBytes: number;
  /** Requests waiting on one model beyond which new ones get 503 (default 256). */
  maxQueue: number;
  /** Attention values (layers × heads × T²) above which `stream: "auto"` sends layer by layer (default 200k). */
  streamAbove: number;
  /**
   * Attention values above which `detail: "auto"` sends the pooled overview instead (default 2^23: 32 MB of
   * float32 in the page, e.g. BERT-base's 12 × 12 heads at 241 tokens).
   */
  overviewAbove: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxTextChars: 40_000,
  maxBodyBytes: 2 ** 20,
  requestTimeoutMs: 60_000,
  memoryCapBytes: 4 * 2 ** 30,
  maxQueue: 256,
  streamAbove: 200_000,
  overviewAbove: 2 ** 23,
};

export interface Context {
  cache: ModelCache;
  roots: readonly string[];
  env: NodeJS.ProcessEnv;
  limits: Limits;
  /** The model the app selects first (--model), as a model id. */
  defaultModel: string;
  /** Recent results, so an export right after a view does not run the model again. */
  results: ResultCache;
}

type Handler = (ctx: Context, req: IncomingMessage, res: ServerResponse) => Promise<void>;

export const getModels: Handler = async (ctx, _req, res) => {
  sendJson(res, 200, {
    models: await listModels(ctx.roots, ctx.env),
    defaultModel: ctx.defaultModel,
    loaded: ctx.cache.status().map((s) => ({ id: s.key, bytes: s.bytes, pending: s.pending })),
    limits: { maxTextChars: ctx.limits.maxTextChars, maxBodyBytes: ctx.limits.maxBodyBytes },
  });
};

export const getStatus: Handler = async (ctx, _req, res) => {
  sendJson(res, 200, {
    uptime: process.uptime(),
    memory: process.memoryUsage(),
    models: ctx.cache.status(),
    capBytes: ctx.limits.memoryCapBytes,
  });
};

/**
 * Loads a model. With `Accept: text/event-stream` the answer is a stream of Server-Sent Events: `progress`
 * (phase, message, file, loaded, total), then `ready` (the model's description) or `error` (status,
 * message). Otherwise one JSON answer once loaded.
 */
export const postLoad: Handler = async (ctx, req, res) => {
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  onlyFields(body, ['model']);
  const key = await modelKey(parseModelSpec(body.model), ctx.roots);
  if (!(req.headers.accept ?? '').includes('text/event-stream')) {
    const model = await withTimeout(ctx.cache.get(key), ctx.limits.requestTimeoutMs, 'loading the model');
    sendJson(res, 200, { model: describeModel(key, model) });
    return;
  }
  const events = eventStream(res);
  try {
    const model = await ctx.cache.get(key, (p: Progress) => events.send('progress', p));
    events.send('ready', { model: describeModel(key, model) });
  } catch (e) {
    events.fail(e);
  }
  events.end();
};

/** How many tokens a text (and pair) make for a model, against its positions: no model run, only its tokenizer. */
export const postTokens: Handler = async (ctx, req, res) => {
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  onlyFields(body, ['model', 'text', 'pair']);
  const text = optionalString(body, 'text') ?? '';
  const pair = optionalString(body, 'pair');
  checkLength(ctx, 'text', text);
  checkLength(ctx, 'pair', pair);
  const key = await modelKey(parseModelSpec(body.model), ctx.roots);
  const m = await withTimeout(ctx.cache.get(key), ctx.limits.requestTimeoutMs, 'loading the model');
  const count: TokenCount = {
    tokens: m.tokenize(text, pair === null || pair.trim() === '' ? null : pair).ids.length,
    maxTokens: m.dims.maxPositions,
  };
  sendJson(res, 200, count);
};

export function checkLength(ctx: Context, name: string, value: string | null): void {
  if (value !== null && value.length > ctx.limits.maxTextChars)
    throw new HttpError(
      413,
      `"${name}" is ${value.length} characters; this server takes at most ${ctx.limits.maxTextChars}`,
    );
}

/**
 * A model's refusal of a text longer than its positions, as an answer that names the API's "truncate" (the
 * model's own message names the CLI's flag) and carries the figures, so the app can phrase it for its page.
 */
function tooLong(e: unknown, key: string): unknown {
  const m =
    e instanceof AttnvizError &&
    /^(text|target) is (\d+) (?:decoder )?tokens but .* at most (\d+) positions/.exec(e.message);
  if (!m) return e;
  const [field, tokens, maxTokens] = [m[1] as 'text' | 'target', Number(m[2]), Number(m[3])];
  return new HttpError(
    400,
    `"${field}" is ${tokens} tokens; ${key} takes at most ${maxTokens} (send "truncate": true to cut it)`,
    { code: 'too-many-tokens', field, tokens, maxTokens },
  );
}

interface AttentionRequest {
  key: string;
  text: string;
  pair: string | null;
  /** The target text of an encoder-decoder model; null (absent or empty) for every other model. */
  target: string | null;
  truncate: boolean;
}

const ATTENTION_FIELDS = ['model', 'text', 'pair', 'target', 'truncate'];

/**
 * Where a streamed answer goes: called once the model has tokenized the text, with what the result will hold,
 * before any layer is computed; returns what to do with each layer as the model computes it (a one-layer
 * Attention, read before the next is computed), or undefined to take the result whole.
 */
export type LayerSink = (header: AttentionHeader) => ((layer: Attention) => void) | undefined;

/**
 * Checks the fields every attention request shares and runs the model (or takes a recent result, or waits for
 * the run of the same request under way). A request whose client has gone by the time its turn comes is dropped
 * instead of run. Encoder-decoder models need a `target` (the decoder's text, teacher-forced) and take no
 * `pair`; other models take no `target`. With `sink`, a model that computes layer by layer (capabilities.stream)
 * hands each layer to it as it comes; the run stops when the response has ended or its client has gone.
 */
export async function attentionFor(
  ctx: Context,
  body: Record<string, unknown>,
  res: ServerResponse,
  sink?: LayerSink,
): Promise<{ request: AttentionRequest; attention: Attention }> {
  const text = optionalString(body, 'text');
  if (text === null || text.trim() === '') throw new HttpError(400, '"text" is missing or empty');
  const pair = optionalString(body, 'pair');
  const target = optionalString(body, 'target');
  checkLength(ctx, 'text', text);
  checkLength(ctx, 'pair', pair);
  checkLength(ctx, 'target', target);
  const request: AttentionRequest = {
    key: await modelKey(parseModelSpec(body.model), ctx.roots),
    text,
    pair: pair === null || pair.trim() === '' ? null : pair,
    target: target === null || target.trim() === '' ? null : target,
    truncate: optionalBoolean(body, 'truncate', false),
  };
  // Only a valid request is ever cached, so a hit needs no model check; a result of the model before its files
  // changed is not one of the model now (another load, another generation).
  const generation = await withTimeout(
    ctx.cache.generation(request.key),
    ctx.limits.requestTimeoutMs,
    'loading the model',
  );
  const cacheKey = JSON.stringify([
    request.key,
    generation,
    request.text,
    request.pair,
    request.target,
    request.truncate,
  ]);
  // Looked up before any await, so that two requests for the same result never both start a run.
  const running = ctx.results.running(cacheKey);
  const recent = ctx.results.get(cacheKey) ?? (running && (await running));
  if (recent) return { request, attention: recent };
  let closed = false;
  res.once('close', () => {
    closed = true;
  });
  const named = (a: Attention): Attention => ({ ...a, model: { ...a.model, source: request.key } });
  const run = withTimeout(
    ctx.cache.run(request.key, async (m) => {
      if (closed && !res.writableFinished) throw new HttpError(499, 'the client closed the request before its turn');
      if (m.capabilities.target) {
        if (request.target === null)
          throw new HttpError(400, `${request.key} is an encoder-decoder model: give the decoder's text as "target"`);
        if (request.pair !== null)
          throw new HttpError(
            400,
            `${request.key} is an encoder-decoder model: it takes a "target" text, not a "pair"`,
          );
        return named(await m.attention(request.text, { target: request.target, truncate: request.truncate }));
      }
      if (request.target !== null)
        throw new HttpError(400, `${request.key} is not an encoder-decoder model: it takes no target text`);
      const options = { pair: request.pair, truncate: request.truncate };
      const stream = sink && m.capabilities.stream && m.stream ? m.stream(request.text, options) : undefined;
      const each = stream && sink?.({ ...stream.header, model: { ...stream.header.model, source: request.key } });
      if (!stream || !each) return named(await m.attention(request.text, options));
      return named(
        await gather(stream, (layer) => {
          // The response ended (timed out: its error frame went) or its client went: stop computing.
          if (closed || res.writableEnded) throw new HttpError(499, 'the client closed the request mid-stream');
          each(named(layer));
        }),
      );
    }),
    ctx.limits.requestTimeoutMs,
    'computing attention',
  );
  ctx.results.track(cacheKey, run);
  const attention = await run.catch((e: unknown) => {
    throw tooLong(e, request.key);
  });
  ctx.results.set(cacheKey, attention);
  return { request, attention };
}

/**
 * Reads `stream` (every layer and head) into one Attention in fresh arrays (the stream's own are overwritten by
 * its next step), handing each layer to `each` as a view of the result once all of its heads have come.
 */
function gather(stream: AttentionStream, each: (layer: Attention) => void): Promise<Attention> {
  const { layers: _l, heads: _h, qk: _q, headDim: _d, hidden: _, ...info } = stream.header;
  return collect(stream, stackedFor(stream.header), info, (a, layer) => each(layerOf(a, layer)));
}

/**
 * Attention as binary (protocol.ts): one AVZ1 blob, or with `stream` "layers" (or "auto" on large
 * results) one frame per layer. A model that computes layer by layer sends each layer's frame as soon as that
 * layer is computed, so the page draws the first layer after about 1/L of the run; a recent result (or another
 * model's) is encoded and sent frame by frame. Encoder-decoder results always go whole: a frame carries one
 * layer of self-attention, and the decoder and cross attentions have layers of their own.
 */
export const postAttention: Handler = async (ctx, req, res) => {
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  onlyFields(body, [...ATTENTION_FIELDS, 'queryKey', 'stream', 'detail', 'layers', 'heads']);
  const stream = body.stream ?? 'auto';
  if (stream !== 'auto' && stream !== 'layers' && stream !== 'none')
    throw new HttpError(400, '"stream" must be "auto", "layers" or "none"');
  const detail = (body.detail ?? 'full') as Detail;
  if (!DETAILS.includes(detail))
    throw new HttpError(400, `"detail" must be ${DETAILS.map((d) => `"${d}"`).join(', ')}`);
  const selection = [indexList(body, 'layers'), indexList(body, 'heads')] as const;
  if (selection.some(Boolean) && detail !== 'full')
    throw new HttpError(400, '"layers" and "heads" choose heads at full resolution: they take no "detail"');
  const queryKey = optionalBoolean(body, 'queryKey', true);
  // The payload's format, from the result's size (layers × heads × T²) alone.
  const formatOf = (values: number, encoderDecoder: boolean): PayloadFormat => {
    if (encoderDecoder) return 'avz1';
    if (detail === 'overview' || (detail === 'auto' && values > ctx.limits.overviewAbove)) return 'avz1-overview';
    return stream === 'layers' || (stream === 'auto' && values > ctx.limits.streamAbove) ? 'avz1-layers' : 'avz1';
  };
  const headers = (format: PayloadFormat, layers: number, tokens: number) => ({
    'content-type': 'application/octet-stream',
    'cache-control': 'no-store',
    [FORMAT_HEADER]: format,
    [LAYERS_HEADER]: String(layers),
    [TOKENS_HEADER]: String(tokens),
  });
  /** Sends the headers of a framed answer; returns the writer of a layer's frame. */
  const start = (format: PayloadFormat, layers: number, tokens: number) => {
    res.writeHead(200, headers(format, layers, tokens));
    return (layer: Attention) =>
      res.write(frame(encodeAttention(format === 'avz1-overview' ? overviewOf(layer) : layer, { queryKey })));
  };
  // Whole layers go out as the model computes them; chosen heads (`layers`, `heads`) come from the whole result.
  const sink: LayerSink | undefined = selection.some(Boolean)
    ? undefined
    : (h) => {
        const format = formatOf(h.layers.length * h.heads.length * h.tokens.length ** 2, false);
        return format === 'avz1' ? undefined : start(format, h.layers.length, h.tokens.length);
      };
  let a: Attention;
  try {
    a = (await attentionFor(ctx, body, res, sink)).attention;
  } catch (e) {
    if (!res.headersSent) throw e;
    // The status went out with the first frame: the error travels as an error frame instead.
    if (!res.writableEnded && !res.destroyed) res.end(errorFrame(statusOf(e), messageOf(e)));
    return;
  }
  if (res.headersSent) return void res.end();
  const [L, H] = a.attention.dims;
  if ((selection.some(Boolean) || detail === 'overview') && a.encoderDecoder)
    throw new HttpError(400, 'encoder-decoder results are sent whole: they take no overview, "layers" or "heads"');
  if (selection.some(Boolean)) {
    const [layers, heads] = selection;
    for (const [name, list, n] of [
      ['layers', layers, L],
      ['heads', heads, H],
    ] as const)
      if (list?.some((i) => i >= n))
        throw new HttpError(400, `"${name}" holds an index past this model's ${n} ${name}`);
    a = selectHeads(a, layers ?? range(L), heads ?? range(H));
  }
  const format = formatOf(a.attention.data.length, Boolean(a.encoderDecoder));
  if (format === 'avz1') {
    const bytes = encodeAttention(a, { queryKey });
    res.writeHead(200, { ...headers(format, a.attention.dims[0], a.tokens.length), 'content-length': bytes.length });
    res.end(bytes);
    return;
  }
  const send = start(format, a.attention.dims[0], a.tokens.length);
  try {
    for (let l = 0; l < a.attention.dims[0] && !res.destroyed; l++)
      if (!send(layerOf(a, l))) await new Promise((resolve) => res.once('drain', resolve));
  } catch (e) {
    res.write(errorFrame(statusOf(e), messageOf(e)));
  }
  res.end();
};

/**
 * A one-layer Attention with each head max-pooled to at most OVERVIEW_CELLS per side (the views' maxPool: cell
 * (i, j) is the largest weight of queries r with ⌊r·n/T⌋ = i over keys c with ⌊c·m/K⌋ = j), without q/k.
 */
function overviewOf(layer: Attention): Attention {
  const [, H, T, K] = layer.attention.dims;
  const n = Math.min(T, OVERVIEW_CELLS),
    m = Math.min(K, OVERVIEW_CELLS);
  const { query: _q, key: _k, positionBias: _p, ...rest } = layer;
  const pooled = maxPoolHeads(layer.attention.data, H, T, K, n, m);
  return { ...rest, attention: { dims: [1, H, n, m], data: pooled } };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** An optional list of distinct indices (`layers`, `heads`); null when absent. */
function indexList(body: Record<string, unknown>, name: string): number[] | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (
    !Array.isArray(v) ||
    v.length === 0 ||
    v.length > 4096 ||
    !v.every((i) => Number.isSafeInteger(i) && i >= 0) ||
    new Set(v).size !== v.length
  )
    throw new HttpError(400, `"${name}" must be a non-empty list of distinct indices, e.g. [0, 3]`);
  return v as number[];
}

/** The standalone HTML of a view, or the attention file (safetensors), as a download. */
export const postExport: Handler = async (ctx, req, res) => {
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  onlyFields(body, [...ATTENTION_FIELDS, 'format', 'view', 'options']);
  const format = body.format;
  if (format !== 'html' && format !== 'attention') throw new HttpError(400, '"format" must be "html" or "attention"');
  const view = (body.view ?? 'head') as ViewName;
  if (!VIEWS.includes(view)) throw new HttpError(400, `"view" must be one of ${VIEWS.join(', ')}`);
  const options = body.options ?? {};
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new HttpError(400, '"options" must be a JSON object');
  const { attention } = await attentionFor(ctx, body, res);
  const bytes =
    format === 'html'
      ? Buffer.from(renderHtml(attention, { view, options: options as Record<string, unknown> }))
      : encodeAttentionFile(attention);
  const name = format === 'html' ? `attnviz-${view}-view.html` : 'attention.safetensors';
  res.writeHead(200, {
    'content-type': format === 'html' ? 'text/html; charset=utf-8' : 'application/octet-stream',
    'content-length': bytes.length,
    'content-disposition': `attachment; filename="${name}"`,
    'cache-control': 'no-store',
  });
  res.end(bytes);
};

/** `promise`, or 503 after `ms` (the work itself goes on: onnxruntime and TF.js runs cannot be cancelled). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HttpError(503, `${what} took longer than this server's limit of ${ms / 1000} s`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A small LRU of recent results, bounded in count and in attention bytes. The newest result stays even when
 * it alone is over the bound: it is in memory anyway, and the heads a page asks for at full resolution after
 * an overview come from it instead of another run.
 */
export class ResultCache {
  private readonly map = new Map<string, { a: Attention; bytes: number }>();
  private bytes = 0;
  /** Runs under way, by key: a request for the same result waits for it (a head asked for mid-stream). */
  private readonly runs = new Map<string, Promise<Attention | undefined>>();

  constructor(
    private readonly capBytes: number,
    private readonly capEntries = 16,
  ) {}

  get(key: string): Attention | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    this.map.delete(key);
    this.map.set(key, hit);
    return hit.a;
  }

  /**
   * The run under way for `key` (see track): its result, or undefined when it failed — it may have stopped
   * because its own client went, so the caller runs the model itself.
   */
  running(key: string): Promise<Attention | undefined> | undefined {
    return this.runs.get(key);
  }

  /** Notes `run` as computing the result for `key` until it settles. */
  track(key: string, run: Promise<Attention>): void {
    const settled: Promise<Attention | undefined> = run
      .catch(() => undefined)
      .finally(() => {
        if (this.runs.get(key) === settled) this.runs.delete(key);
      });
    this.runs.set(key, settled);
  }

  set(key: string, a: Attention): void {
    const ed = a.encoderDecoder;
    const values = [
      a.attention,
      a.query,
      a.key,
      ed?.decoder,
      ed?.cross,
      ed?.decoderQuery,
      ed?.decoderKey,
      ed?.crossQuery,
      ed?.crossKey,
    ].reduce((n, t) => n + (t?.data.length ?? 0), 0);
    const bytes = values * 4;
    const old = this.map.get(key);
    if (old) this.bytes -= old.bytes;
    this.map.delete(key);
    this.map.set(key, { a, bytes });
    this.bytes += bytes;
    for (const [k, v] of this.map) {
      if (k === key || (this.bytes <= this.capBytes && this.map.size <= this.capEntries)) break;
      this.map.delete(k);
      this.bytes -= v.bytes;
    }
  }
}
