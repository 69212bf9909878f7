/** One entry point for every kind of model source. */
import { isTfjsSource } from '../load/tfjs-source.js';
import { Model, type LoadOptions } from './checkpoint-model.js';
import type { AttentionModel } from './model.js';
import { isOnnxSource, OnnxModel } from './onnx-tap.js';

/**
 * The model `source` names, as an AttentionModel:
 * - nothing, or 'embedded': the embedded default model (Universal Sentence Encoder lite) on TF.js, which
 *   needs no download; a TF.js graph model folder (model.json + vocab.json) likewise (tfjs-model.ts; TF.js is
 *   imported only then);
 * - an .onnx file, or a folder in transformers.js layout (onnx/model.onnx): that graph, tapped (onnx-tap.ts);
 * - a Hugging Face folder, hub id or .gguf file: an ONNX graph built from the checkpoint (checkpoint-model.ts).
 * `options` other than `threads` apply to checkpoints only.
 */
export async function loadModel(source?: string, options: LoadOptions = {}): Promise<AttentionModel> {
  if (isTfjsSource(source)) return (await import('./tfjs-model.js')).TfjsModel.load(source);
  if (isOnnxSource(source)) return OnnxModel.load(source!, { threads: options.threads });
  return Model.load(source!, options);
}
