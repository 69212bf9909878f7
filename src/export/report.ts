/**
 * The analysis reports (compare, head finder, generation step by step) as data (JSON, CSV) and as standalone
 * HTML: the report's JSON in one `<script type="application/json">`, the attentions it shows as data blocks
 * (html.ts dataScript, type application/x-attnviz-data, one per `data-name`), and the reports bundle
 * (src/export/reports/page.ts) inlined. Like the views' pages, nothing is fetched.
 */
import { alignTokens, askQuestion } from '../analysis/compare.js';
import { METRIC_DESCRIPTIONS, type MetricSummary } from '../analysis/head-metrics.js';
import type { Attention } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { dataScript, page } from './html.js';
import type {
  CompareReport,
  HeadsReport,
  InputInfo,
  MetricSummaryJson,
  ReportData,
  StepsReport,
} from '../analysis/report-data.js';

export const REPORT_DATA_TYPE = 'application/x-attnviz-data';

/** Report JSON: NaN and ±∞ become null (JSON has no such numbers). */
export function reportJson(data: ReportData): string {
  return `${JSON.stringify(data, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1)}\n`;
}

/** The standalone HTML of a report; `attentions` are the data blocks it shows, by name. */
export function renderReport(data: ReportData, attentions: Record<string, Attention>, title: string): string {
  const json = reportJson(data).replace(/</g, '\\u003c');
  const blocks = Object.entries(attentions).map(([name, a]) =>
    dataScript(a, { type: REPORT_DATA_TYPE, attrs: { 'data-name': name } }),
  );
  const body = [
    `<script type="application/json" id="attnviz-report">${json}</script>`,
    ...blocks,
    '<main id="attnviz-report-root"></main>',
  ].join('\n');
  return page(title, body, 'reports/attnviz-reports.js');
}

const inputInfo = (a: Attention): InputInfo => ({
  text: a.text,
  pair: a.pair,
  model: a.model.source,
  tokens: a.tokens,
});

/** Compare A and B: alignment for the difference (or why there is none) and, given X and Y, the question. */
export function compareReport(a: Attention, b: Attention, question?: { from: string; to: string }): CompareReport {
  let alignment = null,
    alignmentError = null;
  try {
    alignment = alignTokens(a.tokens, b.tokens);
  } catch (e) {
    if (!(e instanceof AttnvizError)) throw e;
    alignmentError = e.message;
  }
  const [layers, heads] = a.attention.dims;
  return {
    kind: 'compare',
    layers,
    heads,
    a: inputInfo(a),
    b: inputInfo(b),
    alignment,
    alignmentError,
    question: question ? askQuestion(a, b, question.from, question.to) : null,
  };
}

const summaryJson = (s: MetricSummary): MetricSummaryJson => ({
  mean: Number.isFinite(s.mean) ? s.mean : null,
  std: Number.isFinite(s.std) ? s.std : null,
  n: s.n,
  best: Number.isFinite(s.best) ? s.best : null,
  bestText: s.bestText,
});

export function headsReport(
  result: { metrics: string[]; layers: number; heads: number; summary: MetricSummary[][] },
  model: string,
  texts: string[],
  skipped: HeadsReport['skipped'],
): HeadsReport {
  const described = METRIC_DESCRIPTIONS as Record<string, string>;
  return {
    kind: 'heads',
    model,
    layers: result.layers,
    heads: result.heads,
    texts,
    skipped,
    metrics: result.metrics.map((name) => ({
      name,
      description: described[name] ?? 'attention from tokens matching the first pattern to tokens matching the second',
    })),
    summary: result.summary.map((row) => row.map(summaryJson)),
  };
}

/** The texts a head finder report opens in the head view: each head's best text per metric. */
export function bestTexts(report: HeadsReport): Map<number, Set<number>> {
  const layersOf = new Map<number, Set<number>>();
  for (const row of report.summary)
    row.forEach((s, lh) => {
      if (s.bestText < 0) return;
      if (!layersOf.has(s.bestText)) layersOf.set(s.bestText, new Set());
      layersOf.get(s.bestText)!.add(Math.floor(lh / report.heads));
    });
  return layersOf;
}

/**
 * An Attention keeping only `layers` (the others zeroed, which deflate shrinks to almost nothing): a head
 * finder report embeds each best text with only the layers where it is some head's best.
 */
export function keepLayers(a: Attention, layers: Set<number>): Attention {
  const [L] = a.attention.dims;
  const size = a.attention.data.length / L;
  const data = new Float32Array(a.attention.data.length);
  for (const l of layers) data.set(a.attention.data.subarray(l * size, (l + 1) * size), l * size);
  const { query: _q, key: _k, hiddenLast: _h, ...rest } = a;
  return { ...rest, attention: { dims: a.attention.dims, data } };
}

/** Head finder CSV: one row per head; per metric its mean, std, n and best text index (empty when undefined). */
export function headsCsv(report: HeadsReport): string {
  const cols = report.metrics.flatMap((m) => ['mean', 'std', 'n', 'best_text'].map((s) => csvField(`${m.name}_${s}`)));
  const lines = [['layer', 'head', ...cols].join(',')];
  for (let lh = 0; lh < report.layers * report.heads; lh++) {
    const cells = report.summary.flatMap((row) => {
      const s = row[lh];
      return [s.mean, s.std, s.n, s.bestText >= 0 ? s.bestText : null].map((v) => (v === null ? '' : String(v)));
    });
    lines.push([Math.floor(lh / report.heads), lh % report.heads, ...cells].join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** RFC 4180 quoting; a leading =, +, - or @ is prefixed with ' so spreadsheets do not run it as a formula. */
function csvField(s: string): string {
  const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function stepsReport(
  g: {
    tokens: string[];
    promptLength: number;
    text: string;
    stopped: string;
    steps?: StepsReport['steps'];
  },
  model: string,
  prompt: string,
  temperature: number,
): StepsReport {
  if (!g.steps) throw new AttnvizError('the generation recorded no steps (generate with alternatives > 0)');
  return {
    kind: 'steps',
    model,
    prompt,
    promptLength: g.promptLength,
    text: g.text,
    tokens: g.tokens,
    stopped: g.stopped,
    temperature,
    steps: g.steps,
  };
}
