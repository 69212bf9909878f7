/** attnviz's public API (Node). */
export { loadModel, Model, type LoadOptions, type AttentionOptions } from './engine.js';
export type { Attention, Tensor, ModelInfo } from './core/attention.js';
export { attentionShape } from './core/attention.js';
export { readAttentionFile, writeAttentionFile, encodeAttentionFile, decodeAttentionFile, FORMAT_VERSION, type AttentionFileMetadata } from './core/attention-file.js';
export { AttnvizError } from './core/errors.js';
export { FAMILIES } from './graph/families.js';
