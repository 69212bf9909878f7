/**
 * `attnviz heads`: the head finder over a corpus (analysis/head-metrics.ts). Each text runs through the model
 * in turn (bench/heads.ts measured the alternatives: see bench/RESULTS.md), its scores are accumulated and
 * its attention dropped; the HTML report then re-runs only the texts it opens in the head view.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SingleBar } from 'cli-progress';
import { CorpusScores, headScores, parsePattern } from '../analysis/head-metrics.js';
import type { Attention } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { bestTexts, headsCsv, headsReport, keepLayers, renderReport, reportJson } from '../export/report.js';
import type { HeadsReport } from '../export/report-data.js';
import { loadModel } from '../models/load-model.js';
import { list, required, type Command } from './args.js';
import { outputFormats, writeText } from './outputs.js';

export const heads: Command = {
  usage: `  heads --model <m> --texts <corpus.txt|folder> [--pair] [--pattern "/from/ -> /to/"]… [--truncate]
        -o <out.html|.json|.csv>…
      The head finder: per layer × head, over the corpus (one text per line, or a folder of .txt files, one
      text each; --pair: a tab separates a sentence pair), the mean and spread of: normalised entropy,
      attention to the first token and to special tokens, previous / same / next token, mean distance,
      punctuation, the same word elsewhere, induction, and each --pattern (from tokens matching /from/ to
      tokens matching /to/, e.g. "/^(he|she)$/i -> /^[A-Z]/"). Texts longer than the model's positions are
      skipped and counted, or cut with --truncate. -o (repeatable): CSV, JSON, or an HTML report (grid,
      sortable table, each head's highest-scoring text in the head view). A progress bar on a terminal.`,
  options: {
    model: { type: 'string' },
    texts: { type: 'string' },
    pair: { type: 'boolean' },
    pattern: { type: 'string', multiple: true },
    truncate: { type: 'boolean' },
    out: { type: 'string', short: 'o', multiple: true },
  },
  async run(v) {
    const outs = list(v, 'out');
    const formats = outputFormats(outs, ['html', 'json', 'csv'] as const);
    const patterns = list(v, 'pattern').map(parsePattern);
    const corpus = await readCorpus(required(v, 'texts'), v.pair === true);
    const m = await loadModel(required(v, 'model'));
    try {
      const truncate = v.truncate === true;
      const run = (t: CorpusText) => m.attention(t.text, { pair: t.pair, truncate });
      const scores = new CorpusScores();
      const scored: CorpusText[] = [];
      const skipped: HeadsReport['skipped'] = [];
      const bar = process.stderr.isTTY
        ? new SingleBar({
            format: 'heads [{bar}] {value}/{total} texts  {speed} texts/s  {eta_formatted} left',
            etaBuffer: 50,
          })
        : null;
      const started = performance.now();
      bar?.start(corpus.length, 0, { speed: '–' });
      for (const [n, t] of corpus.entries()) {
        let a: Attention;
        try {
          a = await run(t);
        } catch (e) {
          // A text the model refuses (too long without --truncate, …) is skipped and reported, not fatal.
          if (!(e instanceof AttnvizError)) throw e;
          skipped.push({ where: t.where, reason: e.message });
          continue;
        } finally {
          bar?.update(n + 1, { speed: ((n + 1) / ((performance.now() - started) / 1000)).toFixed(1) });
        }
        scores.add(scored.length, headScores(a, patterns));
        scored.push(t);
      }
      bar?.stop();
      if (!scored.length)
        throw new AttnvizError(
          `no text of ${corpus.length} could be scored (first: ${skipped[0].where}: ${skipped[0].reason})`,
        );
      const report = headsReport(
        scores.result(),
        m.source,
        scored.map((t) => (t.pair === null ? t.text : `${t.text}\t${t.pair}`)),
        skipped,
      );
      const outputs: string[] = [];
      for (const f of formats) {
        if (f === 'html') {
          // Re-run the texts the report opens, keeping only the layers where each is some head's best.
          const attentions: Record<string, Attention> = {};
          for (const [text, layers] of bestTexts(report))
            attentions[`t${text}`] = keepLayers(await run(scored[text]), layers);
          outputs.push(renderReport(report, attentions, `attnviz heads — ${m.source}`));
        } else outputs.push(f === 'json' ? reportJson(report) : headsCsv(report));
      }
      for (const [i, out] of outs.entries()) await writeText(out, outputs[i]);
      const seconds = (performance.now() - started) / 1000;
      console.error(
        `wrote ${outs.join(', ')}: ${scored.length} texts scored in ${seconds.toFixed(1)} s` +
          (skipped.length ? `, ${skipped.length} skipped (${skipped[0].where}: ${skipped[0].reason})` : ''),
      );
    } finally {
      await m.release();
    }
  },
};

export interface CorpusText {
  text: string;
  pair: string | null;
  /** "line N" or the file name, for messages. */
  where: string;
}

/**
 * A corpus: a file with one text per line (blank lines skipped) or a folder whose .txt files are one text
 * each. With `pair`, a tab splits each text into a sentence pair (a text without one is an error).
 */
export async function readCorpus(path: string, pair: boolean): Promise<CorpusText[]> {
  const info = await stat(path).catch(() => {
    throw new AttnvizError(`--texts ${path}: no such file or folder`);
  });
  let entries: { text: string; where: string }[];
  if (info.isDirectory()) {
    const files = (await readdir(path)).filter((f) => f.toLowerCase().endsWith('.txt')).sort();
    entries = await Promise.all(
      files.map(async (f) => ({ text: (await readFile(join(path, f), 'utf8')).trim(), where: f })),
    );
  } else {
    const lines = (await readFile(path, 'utf8')).split(/\r?\n/);
    entries = lines.map((text, i) => ({ text: text.trim(), where: `line ${i + 1}` }));
  }
  entries = entries.filter((e) => e.text !== '');
  if (!entries.length) throw new AttnvizError(`--texts ${path}: the corpus is empty (no non-blank text)`);
  return entries.map(({ text, where }) => {
    if (!pair) return { text, pair: null, where };
    const tab = text.indexOf('\t');
    if (tab < 0) throw new AttnvizError(`--texts ${path}: ${where} has no tab (--pair needs "A<tab>B" on each line)`);
    return { text: text.slice(0, tab).trim(), pair: text.slice(tab + 1).trim(), where };
  });
}
