/** Where a model source string points: a local folder, or a hub id resolved through the Hugging Face cache. */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { AttnvizError, check } from '../core/errors.js';
import { parseHubId, resolveHubModel, type ResolveOptions } from './hub.js';

/** What `--model` / loadModel accept, for messages about anything else. */
export const MODEL_KINDS =
  'a model is a Hugging Face folder with config.json, a hub id (org/name), a .gguf file, an .onnx file ' +
  'or a TF.js graph model folder';

/** A local folder if one exists at `source`, else a hub id resolved through the Hugging Face cache. */
export async function resolveSource(source: string, options: ResolveOptions): Promise<string> {
  check(source.trim() !== '', 'no model given');
  const local = resolve(source);
  if (existsSync(local)) {
    if (!statSync(local).isDirectory()) {
      const pytorch = /\.(bin|pt|pth|ckpt)$/i.test(source) ? ', and PyTorch weights are not read: use safetensors' : '';
      throw new AttnvizError(`${source}: not a model attnviz reads (${MODEL_KINDS}${pytorch})`);
    }
    return local;
  }
  if (!parseHubId(source))
    throw new AttnvizError(`${source}: no such file or folder, and not a hub id (org/name or org/name@revision)`);
  return resolveHubModel(source, options);
}
