/**
 * The app's side of the server API (docs/server-api.md): model list, model loading with progress (Server-
 * Sent Events read from a fetch, since EventSource cannot POST), attention as binary (whole or layer by
 * layer) and exports.
 */
import type { Attention } from '../core/attention.js';
import { decodeAttention } from '../core/encode.js';
import { FORMAT_HEADER, FrameError, FrameReader, joinLayers } from '../core/protocol.js';

// The API's JSON shapes are shared with the server (core/protocol.ts).
export type { ModelEntry, Progress, LoadedModelInfo as ModelInfo } from '../core/protocol.js';
import type { LoadedModelInfo as ModelInfo, ModelEntry, Progress } from '../core/protocol.js';

export interface ModelList {
  models: ModelEntry[];
  defaultModel: string;
  limits: { maxTextChars: number; maxBodyBytes: number };
}

/** An error the server answered (status and its message), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function failure(res: Response): Promise<ApiError> {
  const body = (await res.json().catch(() => null)) as { message?: string } | null;
  return new ApiError(res.status, body?.message ?? `the server answered ${res.status} ${res.statusText}`);
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

/** Loads `model` on the server, reporting progress events until it is ready. */
export async function loadModel(
  model: string,
  onProgress: (p: Progress) => void,
  signal?: AbortSignal,
): Promise<ModelInfo> {
  const res = await post('/api/models/load', { model }, signal, 'text/event-stream');
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
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null');
      if (event === 'progress') onProgress(data as Progress);
      else if (event === 'ready') return (data as { model: ModelInfo }).model;
      else if (event === 'error') throw new ApiError(data.status, data.message);
    }
  }
  throw new ApiError(0, 'the server ended the model load without an answer');
}

export interface AttentionQuery {
  model: string;
  text: string;
  pair?: string | null;
  target?: string | null;
}

/**
 * Attention for `query`. Layer-by-layer answers call `onPartial` with the layers received so far (each
 * a complete Attention of fewer layers), so the first layer can be drawn before the rest has arrived.
 */
export async function fetchAttention(
  query: AttentionQuery,
  onPartial: (a: Attention, layersTotal: number) => void,
  signal?: AbortSignal,
): Promise<Attention> {
  const res = await post('/api/attention', { ...query, stream: 'auto' }, signal);
  if (res.headers.get(FORMAT_HEADER) !== 'avz1-layers') return decodeAttention(new Uint8Array(await res.arrayBuffer()));
  const total = Number(res.headers.get('x-attnviz-layers'));
  const frames = new FrameReader();
  const layers: Attention[] = [];
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const complete = frames.push(value);
      for (const f of complete) layers.push(decodeAttention(f));
      if (complete.length && layers.length < total) onPartial(joinLayers(layers), total);
    }
  } catch (e) {
    if (e instanceof FrameError) throw new ApiError(e.status, e.message);
    throw e;
  }
  if (!frames.empty || layers.length !== total)
    throw new ApiError(0, `the attention stream ended after ${layers.length} of ${total} layers`);
  return joinLayers(layers);
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
