/** One entry point for every kind of model source. */
import { type EMBEDDED, isTfjsSource } from '../load/tfjs-source.js';
import { Model, type LoadOptions } from './checkpoint-model.js';
import { isOnnxSource, OnnxModel } from './onnx-tap.js';
import type { TfjsModel } from './tfjs-model.js';

/**
 * No source, or 'embedded': the embedded default model (Universal Sentence Encoder lite) on TF.js, which
 * needs no download (models/tfjs-model.ts; TF.js is imported only then). A Hugging Face folder, hub id or
 * .gguf file: an ONNX graph built from the checkpoint (Model). A TF.js graph model folder (model.json +
 * vocab.json) passed as a plain string also loads as a TfjsModel, which has the same source, weightBytes,
 * attention() and release(); `loadAnyModel` is typed for that.
 */
export function loadModel(source?: typeof EMBEDDED, options?: LoadOptions): Promise<TfjsModel>;
export function loadModel(source: string, options?: LoadOptions): Promise<Model>;
export function loadModel(source?: string, options?: LoadOptions): Promise<Model | TfjsModel | OnnxModel> {
  return loadAnyModel(source, options);
}

/** Any source, typed as either kind of model. */
export async function loadAnyModel(source?: string, options?: LoadOptions): Promise<Model | TfjsModel | OnnxModel> {
  if (isTfjsSource(source)) return (await import('./tfjs-model.js')).TfjsModel.load(source);
  // An existing ONNX graph (onnx/model.onnx in transformers.js layout, or an .onnx file), tapped as it is.
  if (isOnnxSource(source)) return OnnxModel.load(source!, { threads: options?.threads });
  return Model.load(source!, options);
}
