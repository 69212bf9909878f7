/**
 * The app's side of the server API (docs/server-api.md): model list, model loading with progress (Server-
 * Sent Events read from a fetch, since EventSource cannot POST), token counts, attention as binary (whole,
 * layer by layer, or for long inputs the pooled overview and then single heads) and exports.
 */
import type { CorpusProgress, GeneratedToken, ReportData, ToolResult } from '../analysis/report-data.js';
import type { Attention } from '../core/attention.js';
import { decodeAttention } from '../core/encode.js';
import { decodePageData } from '../core/page-data.js';
import {
  type ErrorBody,
  FORMAT_HEADER,
  FrameError,
  FrameReader,
  joinLayers,
  type TokenCount,
} from '../core/protocol.js';

// The API's JSON shapes are shared with the server (core/protocol.ts).
export type { ModelEntry, Progress, LoadedModelInfo as ModelInfo } from '../core/protocol.js';
import type { LoadedModelInfo as ModelInfo, ModelEntry, Progress } from '../core/protocol.js';

export interface ModelList {
  models: ModelEntry[];
  defaultModel: string;
  limits: { maxTextChars: number; maxBodyBytes: number };
}

/** An error the server answered (status, message and any figures), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body?: ErrorBody,
  ) {
    super(message);
  }
}

async function failure(res: Response): Promise<ApiError> {
  const body = (await res.json().catch(() => null)) as ErrorBody | null;
  return new ApiError(
    res.status,
    body?.message ?? `the server answered ${res.status} ${res.statusText}`,
    body ?? undefined,
  );
}

async function post(path: string, body: unknown, signal?: AbortSignal, accept?: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(accept ? { accept } : {}) },
      body: JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the attnviz server (${(e as Error).message}); is \`npm start\` still running?`);
  }
  if (!res.ok) throw await failure(res);
  return res;
}

export async function listModels(): Promise<ModelList> {
  const res = await fetch('/api/models');
  if (!res.ok) throw await failure(res);
  return res.json() as Promise<ModelList>;
}

/**
 * Reads a Server-Sent Events answer: `on[event]` hears each event's data until `final` arrives, whose data is
 * returned; an `error` event is an ApiError. `what` names the request for a stream that ends early.
 */
async function readEvents<T>(
  res: Response,
  final: string,
  on: Record<string, (data: never) => void>,
  what: string,
): Promise<T> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? '';
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null');
      if (event === final) return data as T;
      if (event === 'error') throw new ApiError(data.status, data.message);
      on[event]?.(data as never);
    }
  }
  throw new ApiError(0, `the server ended ${what} without an answer`);
}

/** Loads `model` on the server, reporting progress events until it is ready. */
export async function loadModel(
  model: string,
  onProgress: (p: Progress) => void,
  signal?: AbortSignal,
): Promise<ModelInfo> {
  const res = await post('/api/models/load', { model }, signal, 'text/event-stream');
  const ready = await readEvents<{ model: ModelInfo }>(res, 'ready', { progress: onProgress }, 'the model load');
  return ready.model;
}

// ---- the analysis tools (compare, head finder, generation) -----------------------------------------------

/** A tool's report with the attentions it shows, decoded. */
export interface Report {
  report: ReportData;
  data: Map<string, Attention>;
  seed?: number;
}

async function decodeResult(r: ToolResult): Promise<Report> {
  const data = new Map<string, Attention>();
  for (const [name, e] of Object.entries(r.data))
    data.set(name, await decodePageData(e.base85, { bytes: String(e.bytes) }));
  return { report: r.report, data, ...(r.seed !== undefined ? { seed: r.seed } : {}) };
}

export interface CompareQuery {
  model: string;
  /** Model B; absent: the same model. */
  modelB?: string;
  text: string;
  textB: string;
  from?: string;
  to?: string;
  truncate?: boolean;
}

export async function compare(query: CompareQuery, signal?: AbortSignal): Promise<Report> {
  return decodeResult((await (await post('/api/compare', query, signal)).json()) as ToolResult);
}

export interface HeadsQuery {
  model: string;
  /** One text per line (with `pair`, a tab between the two texts of a pair). */
  corpus: string;
  pair?: boolean;
  patterns?: string[];
  truncate?: boolean;
}

export async function findHeads(
  query: HeadsQuery,
  onProgress: (p: CorpusProgress) => void,
  signal?: AbortSignal,
): Promise<Report> {
  const res = await post('/api/heads', query, signal, 'text/event-stream');
  return decodeResult(await readEvents<ToolResult>(res, 'result', { progress: onProgress }, 'the head finder'));
}

export interface GenerateQuery {
  model: string;
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed?: number;
}

export async function generate(
  query: GenerateQuery,
  onToken: (t: GeneratedToken) => void,
  signal?: AbortSignal,
): Promise<Report> {
  const res = await post('/api/generate', query, signal, 'text/event-stream');
  return decodeResult(await readEvents<ToolResult>(res, 'result', { token: onToken }, 'the generation'));
}

export interface AttentionQuery {
  model: string;
  text: string;
  pair?: string | null;
  target?: string | null;
  truncate?: boolean;
}

/** How many tokens the model makes of the text and pair, and how many it takes (no model run). */
export async function countTokens(
  query: Pick<AttentionQuery, 'model' | 'text' | 'pair'>,
  signal?: AbortSignal,
): Promise<TokenCount> {
  const res = await post('/api/tokens', { model: query.model, text: query.text, pair: query.pair ?? null }, signal);
  return res.json() as Promise<TokenCount>;
}

/**
 * A long input's pooled overview: the result without its attention values (`attention.data` empty, dims
 * `[L, H, T, K]`, as the views take it with addLayer / loadHead) and each layer's heads max-pooled to `[H, n, m]`.
 */
export interface Overview {
  shell: Attention;
  layers: { weights: Float32Array; size: [number, number] }[];
}

export interface Receivers {
  /** Layer-by-layer answers: the layers received so far, as one Attention of fewer layers. */
  partial?(a: Attention, layersTotal: number): void;
  /** Overview answers: each layer as it arrives (the overview so far). */
  overview?(o: Overview, layersTotal: number): void;
}

/**
 * Attention for `query`: the whole Attention, or for long inputs (past the server's `overviewAbove`) the
 * pooled Overview; heads at full resolution then come from fetchHeads. Both streamed answers report their
 * layers as they arrive, so the first can be drawn before the rest has come.
 */
export async function fetchAttention(
  query: AttentionQuery,
  on: Receivers,
  signal?: AbortSignal,
): Promise<Attention | Overview> {
  const res = await post('/api/attention', { ...query, stream: 'auto', detail: 'auto' }, signal);
  const format = res.headers.get(FORMAT_HEADER);
  if (format !== 'avz1-layers' && format !== 'avz1-overview')
    return decodeAttention(new Uint8Array(await res.arrayBuffer()));
  const total = Number(res.headers.get('x-attnviz-layers'));
  const layers: Attention[] = [];
  if (format === 'avz1-layers') {
    await readFrames(res, total, (frame) => {
      layers.push(frame);
      if (layers.length < total) on.partial?.(joinLayers(layers), total);
    });
    return joinLayers(layers);
  }
  let overview: Overview | undefined;
  await readFrames(res, total, (frame) => {
    const [, H, n, m] = frame.attention.dims;
    const T = frame.tokens.length,
      K = frame.keyTokens?.length ?? T;
    overview ??= { shell: { ...frame, attention: { dims: [total, H, T, K], data: new Float32Array(0) } }, layers: [] };
    overview.layers.push({ weights: frame.attention.data, size: [n, m] });
    on.overview?.(overview, total);
  });
  if (!overview) throw new ApiError(0, 'the attention stream held no layer');
  return overview;
}

/** Calls `each` with every frame of a framed answer; a cut stream or an error frame is an ApiError. */
async function readFrames(res: Response, total: number, each: (frame: Attention) => void): Promise<void> {
  const frames = new FrameReader();
  const reader = res.body!.getReader();
  let count = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const f of frames.push(value)) {
        each(decodeAttention(f));
        count++;
      }
    }
  } catch (e) {
    if (e instanceof FrameError) throw new ApiError(e.status, e.message);
    throw e;
  }
  if (!frames.empty || count !== total)
    throw new ApiError(0, `the attention stream ended after ${count} of ${total} layers`);
}

/** Heads `heads` of layer `layer` at full resolution (attention `[1, heads, T, K]`, with q/k when `queryKey`). */
export async function fetchHeads(
  query: AttentionQuery,
  layer: number,
  heads: number[],
  queryKey: boolean,
  signal?: AbortSignal,
): Promise<Attention> {
  const body = { ...query, layers: [layer], heads, queryKey, stream: 'none' };
  return decodeAttention(new Uint8Array(await (await post('/api/attention', body, signal)).arrayBuffer()));
}

/** The standalone HTML of a view or the attention file, as the server makes them. */
export async function exportFile(
  query: AttentionQuery,
  format: 'html' | 'attention',
  view: string,
  options: Record<string, unknown>,
): Promise<Blob> {
  const res = await post('/api/export', { ...query, format, view, options });
  return res.blob();
}
