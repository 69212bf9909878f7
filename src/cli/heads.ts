/**
 * `attnviz heads`: the head finder over a corpus (analysis/head-metrics.ts). The texts run on a pool of
 * one-thread sessions (bench/heads.ts measured the alternatives: see bench/RESULTS.md); each text's scores
 * are kept and its attention dropped; the HTML report then re-runs only the texts it opens in the head view.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CorpusText,
  CorpusScores,
  corpusLines,
  corpusTexts,
  type HeadScores,
  headScores,
  parsePattern,
} from '../analysis/head-metrics.js';
import type { Attention } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import type { HeadsReport } from '../analysis/report-data.js';
import type { AttentionModel as Model } from '../models/model.js';
import { loadModel } from '../models/load-model.js';
import { list, numberOption, required, type Command } from './command.js';
import { outputFormats, writeImage } from './outputs.js';

export const heads: Command = {
  name: 'heads',
  synopsis: `heads --model <m> --texts <corpus.txt|folder> [--pair] [--pattern "/from/ -> /to/"]… [--truncate]
      [--jobs N] -o <out.html|.json|.csv|.png>…`,
  description: `The head finder: per layer × head, over the corpus (one text per line, or a folder of .txt files, one
text each; --pair: a tab separates a sentence pair), the mean and spread of: normalised entropy,
attention to the first token and to special tokens, previous / same / next token, mean distance,
punctuation, the same word elsewhere, induction, and each --pattern (from tokens matching /from/ to
tokens matching /to/, e.g. "/^(he|she)$/i -> /^[A-Z]/"). Texts longer than the model's positions are
skipped and counted, or cut with --truncate. -o (repeatable): CSV, JSON, an HTML report (grid,
sortable table, each head's highest-scoring text in the head view) or a PNG of it (drawn without a browser). A
progress bar on a terminal.
--jobs N: N runs at once, each a one-thread session holding its own copy of the weights (default: one
session on every core, the faster on a quiet machine: bench/RESULTS.md).`,
  options: {
    model: { type: 'string' },
    texts: { type: 'string' },
    pair: { type: 'boolean' },
    pattern: { type: 'string', multiple: true },
    truncate: { type: 'boolean' },
    jobs: { type: 'string' },
    out: { type: 'string', short: 'o', multiple: true },
  },
  async run(v) {
    const outs = list(v, 'out');
    const formats = outputFormats(outs, ['html', 'json', 'csv', 'png'] as const);
    const patterns = list(v, 'pattern').map(parsePattern);
    const corpus = await readCorpus(required(v, 'texts'), v.pair === true);
    const jobs = numberOption(v, 'jobs', (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer');
    const models = await pool(required(v, 'model'), jobs);
    const m = models[0];
    try {
      const truncate = v.truncate === true;
      const run = (model: Model, t: CorpusText) => model.attention(t.text, { pair: t.pair, truncate });
      const perText: (HeadScores | null)[] = [];
      const skipped: HeadsReport['skipped'] = [];
      const bar = process.stderr.isTTY
        ? new (await import('cli-progress')).SingleBar({
            format:
              'heads [{bar}] {value}/{total} texts  {speed} texts/s  {eta_formatted} left  ' +
              `(${models.length} run${models.length > 1 ? 's' : ''} at once)`,
            etaBuffer: 50,
          })
        : null;
      const started = performance.now();
      bar?.start(corpus.length, 0, { speed: '–' });
      let next = 0,
        done = 0;
      // Each model takes the next text when its run ends; scores are kept by corpus index, so the result does
      // not depend on which run finished first.
      const worker = async (model: Model) => {
        while (next < corpus.length) {
          const n = next++;
          try {
            perText[n] = headScores(await run(model, corpus[n]), patterns);
          } catch (e) {
            // A text the model refuses (too long without --truncate, …) is skipped and reported, not fatal.
            if (!(e instanceof AttnvizError)) {
              next = corpus.length; // the other runs stop after their current text
              throw e;
            }
            perText[n] = null;
            skipped[n] = { where: corpus[n].where, reason: e.message };
          } finally {
            done++;
            bar?.update(done, { speed: (done / ((performance.now() - started) / 1000)).toFixed(1) });
          }
        }
      };
      // Every run settles before the models are released, even when one fails.
      const settled = await Promise.allSettled(models.map(worker));
      bar?.stop();
      for (const r of settled) if (r.status === 'rejected') throw r.reason;
      const scores = new CorpusScores();
      const scored: CorpusText[] = [];
      perText.forEach((s, n) => {
        if (!s) return;
        scores.add(scored.length, s);
        scored.push(corpus[n]);
      });
      const skips = skipped.filter(Boolean);
      if (!scored.length)
        throw new AttnvizError(
          `no text of ${corpus.length} could be scored (first: ${skips[0].where}: ${skips[0].reason})`,
        );
      // Loaded once the texts are scored, not at every CLI start (the report module imports the views).
      const { bestTexts, headsCsv, headsReport, keepLayers, renderReport, reportJson } = await import(
        '../export/report.js'
      );
      const report = headsReport(
        scores.result(),
        m.source,
        scored.map((t) => (t.pair === null ? t.text : `${t.text}\t${t.pair}`)),
        skips,
      );
      const outputs: (string | Uint8Array)[] = [];
      for (const f of formats) {
        if (f === 'html') {
          // Re-run the texts the report opens, keeping only the layers where each is some head's best.
          const attentions: Record<string, Attention> = {};
          for (const [text, layers] of bestTexts(report))
            attentions[`t${text}`] = keepLayers(await run(m, scored[text]), layers);
          outputs.push(renderReport(report, attentions, `attnviz heads — ${m.source}`));
        } else if (f === 'png')
          // The report as it opens, drawn in Node (export/image.ts), loaded only for an image.
          outputs.push((await import('../export/image.js')).reportPng(report, {}));
        else outputs.push(f === 'json' ? reportJson(report) : headsCsv(report));
      }
      for (const [i, out] of outs.entries()) await writeImage(out, outputs[i]);
      const seconds = (performance.now() - started) / 1000;
      console.error(
        `wrote ${outs.join(', ')}: ${scored.length} texts scored in ${seconds.toFixed(1)} s` +
          (skips.length ? `, ${skips.length} skipped (${skips[0].where}: ${skips[0].reason})` : ''),
      );
    } finally {
      await Promise.all(models.map((x) => x.release()));
    }
  },
};

/**
 * The models the corpus runs on: by default one session with onnxruntime's threads (one per core), one text
 * per call — on a quiet machine 1.39× the texts per second of a pool of one-thread sessions (bench/heads.ts,
 * bench/RESULTS.md); with `--jobs N`, N one-thread sessions, each holding its own copy of the weights.
 */
async function pool(source: string, jobs: number | undefined): Promise<Model[]> {
  if (jobs === undefined || jobs === 1) return [await loadModel(source)];
  const models: Model[] = [];
  try {
    for (let i = 0; i < jobs; i++) models.push(await loadModel(source, { threads: 1 }));
  } catch (e) {
    await Promise.all(models.map((x) => x.release()));
    throw e;
  }
  return models;
}

/** A corpus on disk: a file with one text per line, or a folder whose .txt files are one text each. */
export async function readCorpus(path: string, pair: boolean): Promise<CorpusText[]> {
  const info = await stat(path).catch(() => {
    throw new AttnvizError(`--texts ${path}: no such file or folder`);
  });
  let entries: { text: string; where: string }[];
  if (info.isDirectory()) {
    const files = (await readdir(path)).filter((f) => f.toLowerCase().endsWith('.txt')).sort();
    entries = await Promise.all(files.map(async (f) => ({ text: await readFile(join(path, f), 'utf8'), where: f })));
  } else entries = corpusLines(await readFile(path, 'utf8'));
  return corpusTexts(entries, pair, `--texts ${path}`);
}
