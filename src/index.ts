/** attnviz's public API (Node). */
export { loadModel } from './models/load-model.js';
export type {
  AttentionModel,
  AttentionOptions,
  GenerateOptions,
  Generation,
  ModelCapabilities,
  ModelDims,
} from './models/model.js';
export { Model, type LoadOptions } from './models/checkpoint-model.js';
export type { Attention, Tensor, ModelInfo } from './core/attention.js';
export { attentionShape } from './core/attention.js';
export {
  readAttentionFile,
  writeAttentionFile,
  encodeAttentionFile,
  decodeAttentionFile,
  FORMAT_VERSION,
  type AttentionFileMetadata,
} from './core/attention-file.js';
export { AttnvizError } from './core/errors.js';
export { FAMILIES } from './graph/families.js';
export { renderHtml, type HtmlOptions } from './export/html.js';
export { renderImage } from './export/image.js';
export { encodeAttention, decodeAttention } from './core/encode.js';
