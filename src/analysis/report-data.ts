/**
 * What the analysis reports hold besides attention: the JSON written by `-o report.json` and embedded in the
 * HTML reports, read back by the report pages (src/views/reports/). Numbers that are not defined are null.
 */
import type { Alignment, Question } from './compare.js';

export interface InputInfo {
  text: string;
  pair: string | null;
  model: string;
  tokens: string[];
}

export interface CompareReport {
  kind: 'compare';
  layers: number;
  heads: number;
  a: InputInfo;
  b: InputInfo;
  /** Null when the tokens do not align; `alignmentError` says why. */
  alignment: Alignment | null;
  alignmentError: string | null;
  question: Question | null;
}

export interface MetricSummaryJson {
  mean: number | null;
  std: number | null;
  n: number;
  best: number | null;
  bestText: number;
}

export interface HeadsReport {
  kind: 'heads';
  model: string;
  layers: number;
  heads: number;
  /** The texts scored (pairs joined by a tab), in corpus order; `bestText` indexes this list. */
  texts: string[];
  /** Texts left out (too long without --truncate), with their line or file. */
  skipped: { where: string; reason: string }[];
  metrics: { name: string; description: string }[];
  /** `summary[m][l · heads + h]`. */
  summary: MetricSummaryJson[][];
}

export interface StepsReport {
  kind: 'steps';
  model: string;
  prompt: string;
  promptLength: number;
  text: string;
  tokens: string[];
  stopped: string;
  temperature: number;
  steps: {
    id: number;
    token: string;
    probability: number;
    top: { id: number; token: string; probability: number }[];
  }[];
}

export type ReportData = CompareReport | HeadsReport | StepsReport;

/** An attention a report shows, as the server sends it to the app: its binary encoding (core/encode.ts) in base 85. */
export interface EncodedAttention {
  bytes: number;
  base85: string;
}

/**
 * A report as the server's tool endpoints answer it (docs/server-api.md): the report and the attentions it
 * shows, by name (as the HTML report's data blocks); `seed` for a generation.
 */
export interface ToolResult {
  report: ReportData;
  data: Record<string, EncodedAttention>;
  seed?: number;
}

/** The head finder's progress: texts run so far (skipped ones included) of `total`. */
export interface CorpusProgress {
  done: number;
  total: number;
  skipped: number;
}

/** A token as generation chooses it (`index`: its position in prompt + generated tokens). */
export interface GeneratedToken {
  index: number;
  id: number;
  token: string;
}
