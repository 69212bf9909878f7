/**
 * A TF.js graph model's files read without TF.js: model.json (the GraphDef and the weights manifest) and its
 * weight shards. The shards are one byte stream cut into files of 4 MB, so a tensor may span two of them: they
 * are concatenated in manifest order, and each tensor is the next `size × 4` bytes, as the TF.js specs list them.
 * Both runtimes read them from here: onnxruntime (graph/use-lite.ts, as graph constants) and TF.js
 * (runtime/tfjs.ts, through an IO handler).
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AttnvizError, check } from '../core/errors.js';
import { readBytes } from './weights.js';

/** One entry of the weights manifest. */
export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}

/** model.json of a TF.js graph model (the part read here). */
export interface GraphModelJson {
  format?: string;
  modelTopology: { node: GraphNodeJson[] } & Record<string, unknown>;
  weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[];
}

/** One node of the GraphDef in model.json. */
export interface GraphNodeJson {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, unknown>;
}

/** A weight as stored: float32 or int32 values (views into the shards' bytes) and its shape. */
export interface TfjsTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface TfjsGraphFiles {
  json: GraphModelJson;
  /** Every shard, concatenated. */
  weightData: Uint8Array<ArrayBuffer>;
  /** Weight name → values. */
  weights: Map<string, TfjsTensor>;
}

/** Reads `modelJson` and the shards beside it; every weight must be an unquantized float32 or int32 tensor. */
export async function readTfjsGraph(modelJson: string): Promise<TfjsGraphFiles> {
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
  const paths = json.weightsManifest.flatMap((g) => g.paths);
  for (const path of paths)
    check(!path.includes('..') && !path.startsWith('/'), `${modelJson}: weight path ${path} leaves the model folder`);
  const sizes = await Promise.all(
    paths.map((path) =>
      stat(join(dir, path)).then(
        (s) => s.size,
        (e: Error) => {
          throw new AttnvizError(`${modelJson}: weight shard ${path} missing (${e.message})`);
        },
      ),
    ),
  );
  // Read straight into one buffer: fresh memory is costly to touch on these VMs (a concatenation of what
  // readFile returns touched three times as much: 0.45 s of CPU for this 28 MB model, measured).
  const weightData = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const [i, path] of paths.entries()) {
    readBytes(join(dir, path), 0, sizes[i], `weight shard ${path}`, weightData.subarray(at, at + sizes[i]));
    at += sizes[i];
  }
  const weights = new Map<string, TfjsTensor>();
  let offset = 0;
  for (const spec of json.weightsManifest.flatMap((g) => g.weights)) {
    check(
      !spec.quantization && (spec.dtype === 'float32' || spec.dtype === 'int32'),
      `${modelJson}: weight ${spec.name} is ${spec.quantization ? 'quantized' : spec.dtype}; ` +
        'only float32 and int32 weights are read',
    );
    const size = spec.shape.reduce((a, b) => a * b, 1);
    check(offset + size * 4 <= weightData.byteLength, `${modelJson}: the weight shards end before ${spec.name}`);
    const Type = spec.dtype === 'float32' ? Float32Array : Int32Array;
    weights.set(spec.name, { shape: spec.shape, data: new Type(weightData.buffer, offset, size) });
    offset += size * 4;
  }
  check(
    offset === weightData.byteLength,
    `${modelJson}: the weight shards hold ${weightData.byteLength} bytes, the manifest lists ${offset}`,
  );
  return { json, weightData, weights };
}

/** The value of a one-element weight (a scalar Const), or null if `name` is not one. */
export function scalarWeight(weights: Map<string, TfjsTensor>, name: string): number | null {
  const t = weights.get(name);
  return t && t.data.length === 1 ? t.data[0] : null;
}
