/**
 * The one module that talks to TensorFlow.js (Node), the runtime of TF.js graph models such as the embedded
 * default model. Pure JavaScript on the 'cpu' backend: no native addon (tfjs-node is not used), nothing
 * downloaded. TF.js is imported on first use only, so the ONNX path (Hugging Face folders, hub ids) never
 * loads it.
 *
 * TF.js keeps one engine per process whose scope bookkeeping is global, so graph runs from every model are
 * queued here: one at a time, never interleaved across awaits.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type * as TfCore from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import { AttnvizError, check } from '../core/errors.js';

export type Tf = typeof TfCore;
export type { GraphModel };

/** model.json of a TF.js graph model (the part read here). */
export interface GraphModelJson {
  format?: string;
  modelTopology: { node: GraphNodeJson[] } & Record<string, unknown>;
  weightsManifest: { paths: string[]; weights: TfCore.io.WeightsManifestEntry[] }[];
}

/** One node of the GraphDef in model.json. */
export interface GraphNodeJson {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, unknown>;
}

export interface LoadedGraph {
  tf: Tf;
  model: GraphModel;
  json: GraphModelJson;
  /** Bytes of all weight shards. */
  weightBytes: number;
}

let runtime:
  | Promise<{ tf: Tf; loadGraphModel: typeof import('@tensorflow/tfjs-converter').loadGraphModel }>
  | undefined;

/** tfjs-core with the cpu backend and the converter, imported and initialised once. */
function tfjs() {
  runtime ??= (async () => {
    const [tf, , converter] = await Promise.all([
      import('@tensorflow/tfjs-core'),
      import('@tensorflow/tfjs-backend-cpu'),
      import('@tensorflow/tfjs-converter'),
    ]);
    await tf.setBackend('cpu');
    // The cpu backend greets its first tensor in Node with a banner recommending tfjs-node; not wanted here.
    (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
    return { tf, loadGraphModel: converter.loadGraphModel };
  })();
  return runtime;
}

/**
 * Loads the graph model at `modelJson` (model.json; its weight shards beside it) through a file-system IO
 * handler: files are read with node:fs, never fetched.
 */
export async function loadGraph(modelJson: string): Promise<LoadedGraph> {
  const { tf, loadGraphModel } = await tfjs();
  let json: GraphModelJson;
  try {
    json = JSON.parse(await readFile(modelJson, 'utf8')) as GraphModelJson;
  } catch (e) {
    throw new AttnvizError(`${modelJson}: cannot read a TF.js model.json (${(e as Error).message})`);
  }
  check(
    json.modelTopology && Array.isArray(json.modelTopology.node) && Array.isArray(json.weightsManifest),
    `${modelJson}: not a TF.js graph model (no modelTopology.node / weightsManifest)`,
  );
  const dir = dirname(modelJson);
  // Weights are the concatenation of every group's shards, in manifest order, as the specs list them.
  const shards: Buffer[] = [];
  for (const group of json.weightsManifest) {
    for (const path of group.paths) {
      check(!path.includes('..') && !path.startsWith('/'), `${modelJson}: weight path ${path} leaves the model folder`);
      shards.push(
        await readFile(join(dir, path)).catch((e: Error) => {
          throw new AttnvizError(`${modelJson}: weight shard ${path} missing (${e.message})`);
        }),
      );
    }
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  const handler: TfCore.io.IOHandler = {
    load: async () => ({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
      weightData,
      format: json.format,
    }),
  };
  const model = await loadGraphModel(handler);
  return { tf, model, json, weightBytes: all.byteLength };
}

let queue: Promise<unknown> = Promise.resolve();

/** Runs `job` after every TF.js job queued before it (see the header). */
export function runQueued<T>(job: () => Promise<T>): Promise<T> {
  // The cpu backend's kernels resolve on microtasks: a turn of the event loop between runs lets I/O through.
  const result = queue.then(() => new Promise((resolve) => setImmediate(resolve))).then(job);
  queue = result.catch(() => undefined);
  return result;
}
