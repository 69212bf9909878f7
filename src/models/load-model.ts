/** One entry point for every kind of model source. */
import { type Attention, attentionProblem } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { isOnnxSource } from '../load/onnx-source.js';
import { isTfjsSource } from '../load/tfjs-source.js';
import { Model, type LoadOptions } from './checkpoint-model.js';
import type { AttentionModel } from './model.js';

/**
 * The model `source` names, as an AttentionModel:
 * - nothing, or 'embedded': the embedded default model (Universal Sentence Encoder lite, a TF.js graph run on
 *   onnxruntime), which needs no download; a TF.js graph model folder (model.json + vocab.json) likewise
 *   (tfjs-model.ts; TF.js, for graphs other than USE lite, is imported only then);
 * - an .onnx file, or a folder in transformers.js layout (onnx/model.onnx): that graph, tapped (onnx-tap.ts,
 *   imported only then);
 * - a Hugging Face folder, hub id or .gguf file: an ONNX graph built from the checkpoint (checkpoint-model.ts).
 * `options` other than `threads` apply to checkpoints only.
 */
export async function loadModel(source?: string, options: LoadOptions = {}): Promise<AttentionModel> {
  if (isTfjsSource(source))
    return checked((await import('./tfjs-model.js')).TfjsModel.load(source, { threads: options.threads }));
  if (isOnnxSource(source))
    return checked((await import('./onnx-tap.js')).OnnxModel.load(source!, { threads: options.threads }));
  return checked(Model.load(source!, options));
}

/**
 * `m` with every result checked (core/attention.ts attentionProblem: one pass over the output): a NaN weight,
 * a bad config value (rope_theta: -1) or a broken graph gives NaN or rows that do not sum to 1, which is a
 * one-line error naming layer and head rather than a silently wrong view.
 */
async function checked(loading: Promise<AttentionModel>): Promise<AttentionModel> {
  const m = await loading;
  const check = (a: Attention): Attention => {
    const problem = attentionProblem(a);
    if (problem) throw new AttnvizError(`${m.source}: the model gives invalid attention: ${problem}`);
    return a;
  };
  const attention = m.attention.bind(m);
  m.attention = async (text, options) => check(await attention(text, options));
  const generate = m.generate?.bind(m);
  if (generate)
    m.generate = async (prompt, options) => {
      const g = await generate(prompt, options);
      if (g.attention) check(g.attention);
      return g;
    };
  return m;
}
