/** attnviz's public API (Node). */
export { loadModel } from './models/load-model.js';
export type {
  AttentionModel,
  AttentionOptions,
  GenerateOptions,
  Generation,
  GenerationStep,
  ModelCapabilities,
  ModelDims,
} from './models/model.js';
export { Model, type LoadOptions, type ExtractOptions } from './models/checkpoint-model.js';
export type {
  Attention,
  Tensor,
  ModelInfo,
  AttentionStream,
  AttentionHeader,
  LayerAttention,
} from './core/attention.js';
export { attentionShape } from './core/attention.js';
export { readAttentionFile, writeAttentionFile, writeAttentionStream } from './core/files.js';
export {
  encodeAttentionFile,
  decodeAttentionFile,
  FORMAT_VERSION,
  FLOAT_DTYPES,
  type AttentionFileMetadata,
  type AttentionFileOptions,
  type FloatDType,
} from './core/attention-file.js';
export { AttnvizError } from './core/errors.js';
export { FAMILIES } from './graph/families.js';
export { renderHtml, type HtmlOptions } from './export/html.js';
export { reportPng, viewImage, viewSvg, svgToPng } from './export/image.js';
export { encodeAttention, decodeAttention } from './core/encode.js';
export { aggregate, meanHeads, maxHeads, rollout, AGGREGATES, type Aggregate } from './analysis/aggregate.js';
export {
  alignTokens,
  askQuestion,
  attentionBetween,
  attentionDifference,
  selectTokens,
  type Alignment,
  type Question,
} from './analysis/compare.js';
export {
  headScores,
  CorpusScores,
  parsePattern,
  BUILTIN_METRICS,
  type HeadScores,
  type MetricSummary,
  type TokenPattern,
} from './analysis/head-metrics.js';
export { stepAttention, stepQuery } from './analysis/steps.js';
export { renderReport, compareReport, headsReport, stepsReport, headsCsv, reportJson } from './export/report.js';
export type { CompareReport, HeadsReport, StepsReport, ReportData } from './analysis/report-data.js';
