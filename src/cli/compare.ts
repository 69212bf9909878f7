/**
 * `attnviz compare`: two inputs — two texts on one model, or one text on two models sharing a tokenizer —
 * side by side, their difference where the tokens align, and the question "attention from X to Y" per
 * layer × head ranked by A − B (analysis/compare.ts). Writes an HTML report, the JSON, or the question as CSV.
 */
import type { Attention } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { loadModel } from '../models/load-model.js';
import { list, type Command } from './command.js';
import { outputFormats, scaleOption, writeImage } from './outputs.js';

export const compare: Command = {
  name: 'compare',
  synopsis: `compare --model <m> [--model <m2>] --text "<A>" [--text "<B>"] [--from X --to Y] [--truncate]
        -o <report.html|.json|.csv|.png|.svg> [--scale S]`,
  description: `Compare two inputs: two texts on one model, or one text on two models that share a tokenizer (two of
each: text A on model A, text B on model B). The report shows both head views linked (layer, heads,
hover, pins), the difference A − B where the tokens align (same length, else common prefix and
suffix), and with --from/--to the attention from tokens X to tokens Y per layer × head, ranked by
A − B (grid and table; .csv writes that table). X and Y: a word (case-insensitive), /regex/flags on
the token text, or #i,j (token indices), matched in each input. .svg and .png: the two head views side by
side, drawn without a browser (--scale: PNG pixels per CSS px, default 1). -o repeats.`,
  options: {
    model: { type: 'string', multiple: true },
    text: { type: 'string', multiple: true },
    from: { type: 'string' },
    to: { type: 'string' },
    truncate: { type: 'boolean' },
    out: { type: 'string', short: 'o', multiple: true },
    scale: { type: 'string' },
  },
  async run(v) {
    const models = list(v, 'model'),
      texts = list(v, 'text');
    const outs = list(v, 'out');
    const formats = outputFormats(outs, ['html', 'json', 'csv', 'png', 'svg'] as const);
    const scale = await scaleOption(v.scale, formats.includes('png') ? 'png' : null);
    if (!models.length) throw new AttnvizError('missing --model');
    if (!texts.length) throw new AttnvizError('missing --text');
    if (models.length > 2 || texts.length > 2 || models.length + texts.length < 3)
      throw new AttnvizError(
        'compare takes two texts on one model or one text on two models, ' +
          `not ${texts.length} text(s) on ${models.length} model(s)`,
      );
    if ((v.from === undefined) !== (v.to === undefined)) throw new AttnvizError('--from and --to go together');
    const question = typeof v.from === 'string' && typeof v.to === 'string' ? { from: v.from, to: v.to } : undefined;
    if (formats.includes('csv') && !question)
      throw new AttnvizError('a .csv output is the question table: give --from and --to');

    const inputs = [0, 1].map((i) => ({
      model: models[Math.min(i, models.length - 1)],
      text: texts[Math.min(i, texts.length - 1)],
    }));
    const [a, b] = await attentions(inputs, v.truncate === true);
    // The report module (views, HTML) is loaded when a report is made, not at every CLI start.
    const { compareReport, renderReport, reportJson } = await import('../export/report.js');
    const report = compareReport(a, b, question);
    // Every output is made before any is written, so a failure leaves none.
    const html = renderReport(report, { a, b }, `attnviz compare — ${a.model.source}`);
    const made: (string | Uint8Array)[] = [];
    for (const f of formats) {
      if (f === 'json') made.push(reportJson(report));
      else if (f === 'csv') {
        const rows = report.question!.rows.map((r, rank) => [rank + 1, r.layer, r.head, r.a, r.b, r.diff].join(','));
        made.push(`rank,layer,head,a,b,a_minus_b\n${rows.join('\n')}\n`);
      } else if (f === 'html') made.push(html);
      else {
        // The two head views side by side, drawn in Node (export/image.ts), loaded only for an image.
        const { sideBySide, svgToPng, viewSvg } = await import('../export/image.js');
        const svg = sideBySide([a, b].map((x) => viewSvg(x, 'head', { theme: 'light' })));
        made.push(f === 'svg' ? svg : svgToPng(svg, scale));
      }
    }
    for (const [i, out] of outs.entries()) await writeImage(out, made[i]);
    const top = report.question?.rows[0];
    console.error(
      `wrote ${outs.join(', ')}: ${a.tokens.length} and ${b.tokens.length} tokens` +
        (report.alignment ? `, aligned by ${report.alignment.rule}` : `; no difference (${report.alignmentError})`) +
        (top ? `; largest |A − B|: layer ${top.layer} head ${top.head} (${top.diff.toFixed(4)})` : ''),
    );
  },
};

/** Runs each input, loading each distinct model once. */
async function attentions(inputs: { model: string; text: string }[], truncate: boolean): Promise<Attention[]> {
  const out: Attention[] = [];
  for (const source of [...new Set(inputs.map((i) => i.model))]) {
    const m = await loadModel(source);
    try {
      for (const [n, input] of inputs.entries())
        if (input.model === source) out[n] = await m.attention(input.text, { truncate });
    } finally {
      await m.release();
    }
  }
  return out;
}
