/**
 * The models a request may name, how they are listed and how one is opened.
 *
 * A model is named by a string (the `model` field of requests, the `id` of GET /api/models):
 * - `embedded` (or nothing): the embedded default model (TF.js, no download);
 * - `path:<folder>`: a Hugging Face folder, a TF.js graph model folder or a .gguf file inside a configured
 *   model root (absolute, or relative to a root; checked by security.ts);
 * - `hub:<org/name[@revision]>`, or the bare hub id: from the Hugging Face cache, downloaded when missing.
 */
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { AttnvizError } from '../core/errors.js';
import { loadModel } from '../models/load-model.js';
import type { AttentionModel } from '../models/model.js';
import { hubCacheDir, parseHubId, resolveHubModel } from '../load/hub.js';
import { EMBEDDED } from '../load/tfjs-source.js';
import { HttpError } from './http-error.js';
import type { OpenedModel } from './model-cache.js';
import { modelFiles, resolveInRoots } from './security.js';
import type { LoadedModelInfo, ModelEntry, Progress } from '../core/protocol.js';

export type ModelSpec = { kind: 'embedded' } | { kind: 'path'; path: string } | { kind: 'hub'; id: string };

export const EMBEDDED_LABEL = 'Universal Sentence Encoder lite (embedded)';

export function parseModelSpec(model: unknown): ModelSpec {
  if (model === undefined || model === null || model === '' || model === EMBEDDED) return { kind: 'embedded' };
  if (typeof model !== 'string') throw new HttpError(400, '"model" must be a string');
  if (model.length > 1000) throw new HttpError(400, '"model" is too long');
  if (model.startsWith('path:')) return { kind: 'path', path: model.slice(5) };
  const id = model.startsWith('hub:') ? model.slice(4) : model;
  if (parseHubId(id)) return { kind: 'hub', id };
  throw new HttpError(
    400,
    `"${model.slice(0, 200)}" is not a model: use "embedded", a hub id (org/name), or "path:<folder in a model root>"`,
  );
}

/** The cache key of a spec: the same model named two ways is loaded once. */
export async function modelKey(spec: ModelSpec, roots: readonly string[]): Promise<string> {
  switch (spec.kind) {
    case 'embedded':
      return EMBEDDED;
    case 'path':
      return `path:${await resolveInRoots(spec.path, roots)}`;
    case 'hub':
      return `hub:${spec.id.includes('@') ? spec.id : `${spec.id}@main`}`;
  }
}

/**
 * Opens the model a key names, with the state of its files taken first (a folder's files checked against
 * `roots`; a hub model's snapshot folder as it is); hub downloads report their bytes through `onProgress`.
 */
export async function openModel(
  key: string,
  roots: readonly string[],
  env: NodeJS.ProcessEnv,
  onProgress: (p: Progress) => void,
): Promise<OpenedModel> {
  if (key === EMBEDDED) {
    onProgress({ phase: 'load', message: `loading ${EMBEDDED_LABEL}` });
    // Part of this package: nothing to watch.
    return { model: await loadModel(EMBEDDED), state: '', files: async () => '' };
  }
  if (key.startsWith('path:')) {
    const real = key.slice(5);
    onProgress({ phase: 'load', message: `loading ${basename(real)}` });
    return opened(real, () => modelFiles(real, roots), env);
  }
  const id = key.slice(4).replace(/@main$/, '');
  onProgress({ phase: 'resolve', message: `looking up ${id}` });
  let dir: string;
  try {
    dir = await resolveHubModel(id, { env, progress: false, fetch: progressFetch(onProgress) });
  } catch (e) {
    // Not in the cache and not downloadable: the model does not exist for this server.
    if (e instanceof AttnvizError) throw new HttpError(404, e.message);
    throw e;
  }
  onProgress({ phase: 'load', message: `loading ${id}` });
  return opened(dir, () => modelFiles(dir, null), env);
}

/** Loads the model at `path`, its files' state taken before it reads them (a change during the load shows). */
async function opened(path: string, files: () => Promise<string>, env: NodeJS.ProcessEnv): Promise<OpenedModel> {
  const state = await files();
  // Private copies of the weights: files changed or truncated under a loaded model must not reach it (SIGBUS).
  // A session per layer, so that each layer's overview reaches the page as soon as it is computed (the model
  // view's first paint after one layer, not after the whole pass).
  return { model: await loadModel(path, { env, progress: false, weights: 'copy', staged: true }), state, files };
}

export function describeModel(id: string, m: AttentionModel): LoadedModelInfo {
  return {
    id,
    modelType: m.modelType,
    layers: m.dims.layers,
    heads: m.dims.heads,
    causal: m.causal,
    maxPositions: m.dims.maxPositions,
    weightBytes: m.weightBytes,
    encoderDecoder: m.capabilities.target,
    generate: m.capabilities.generate,
  };
}

/**
 * A fetch that reports the bytes of file downloads (Hub URLs with /resolve/) as they arrive, at most every
 * 100 ms per file.
 */
function progressFetch(onProgress: (p: Progress) => void): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    // Range requests are the client's size probes (bytes=0-0), not the download.
    const ranged = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)).has('range');
    if (!response.body || !url.includes('/resolve/') || ranged) return response;
    const file = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
    const total = Number(response.headers.get('content-length')) || undefined;
    let loaded = 0,
      at = 0;
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        loaded += chunk.length;
        if (Date.now() - at > 100 || loaded === total) {
          at = Date.now();
          onProgress({ phase: 'download', message: `downloading ${file}`, file, loaded, total });
        }
        controller.enqueue(chunk);
      },
    });
    return new Response(response.body.pipeThrough(counter), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

/** The embedded model, folders under the roots (depth ≤ 3) and complete snapshots in the Hugging Face cache. */
export async function listModels(roots: readonly string[], env: NodeJS.ProcessEnv): Promise<ModelEntry[]> {
  const entries: ModelEntry[] = [{ id: EMBEDDED, label: EMBEDDED_LABEL, kind: 'embedded', format: 'tfjs' }];
  const limit = 500;
  const walk = async (root: string, dir: string, depth: number): Promise<void> => {
    if (entries.length >= limit) return;
    const names = await readdir(dir, { withFileTypes: true }).catch(() => []);
    const label = relative(root, dir) || basename(dir);
    if (names.some((n) => n.name === 'config.json')) {
      entries.push({ id: `path:${dir}`, label, kind: 'folder', format: 'hf' });
      return;
    }
    if (names.some((n) => n.name === 'model.json') && names.some((n) => n.name === 'vocab.json')) {
      entries.push({ id: `path:${dir}`, label, kind: 'folder', format: 'tfjs' });
      return;
    }
    for (const n of names) {
      if (n.name.startsWith('.') || n.name === 'node_modules') continue;
      if (n.isFile() && n.name.toLowerCase().endsWith('.gguf'))
        entries.push({
          id: `path:${join(dir, n.name)}`,
          label: relative(root, join(dir, n.name)),
          kind: 'folder',
          format: 'gguf',
        });
      else if (n.isDirectory() && depth < 3) await walk(root, join(dir, n.name), depth + 1);
    }
  };
  for (const root of roots) await walk(root, root, 0);
  entries.push(...(await cachedHubModels(env)));
  return entries;
}

async function cachedHubModels(env: NodeJS.ProcessEnv): Promise<ModelEntry[]> {
  const cache = hubCacheDir(env);
  const names = await readdir(cache).catch(() => [] as string[]);
  const out: ModelEntry[] = [];
  for (const name of names.sort()) {
    const m = /^models--(.+)$/.exec(name);
    if (!m) continue;
    const id = m[1].split('--').join('/');
    if (!parseHubId(id)) continue;
    const snapshots = join(cache, name, 'snapshots');
    const commits = await readdir(snapshots).catch(() => [] as string[]);
    const complete = await Promise.all(
      commits.map((c) =>
        stat(join(snapshots, c, 'config.json')).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (!complete.some(Boolean) || !existsSync(join(cache, name, 'refs', 'main'))) continue;
    out.push({ id: `hub:${id}`, label: `${id} (Hugging Face cache)`, kind: 'hub-cache', format: 'hf' });
  }
  return out;
}
