/**
 * `attnviz neurons`: for one layer, head and query token, which head dimensions make its scores
 * (analysis/contributions.ts): the q ⊙ k terms for one key (by default the key it attends to most) with their
 * share of q·k, and the dimensions that drive the whole row's pattern. Prints a summary, or writes JSON, or
 * the neuron view expanded on that token (HTML, PNG, SVG). Also parses --head/--token/--key for
 * `attnviz export --view neuron`.
 */
import { extname } from 'node:path';
import { ATTENTION_PARTS, type Attention, type AttentionPart, attentionPart } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { writeFileAtomic } from '../core/files.js';
import { isMasked } from '../analysis/neuron.js';
import { type NeuronReport, neuronReport } from '../analysis/neuron-report.js';
import { type Command, MODEL_OPTIONS, type Values } from './command.js';
import { attentionOrFile } from './extract.js';
import { scaleOption } from './outputs.js';

/** A non-negative integer option below `limit` (what it counts: `of`), or undefined when absent. */
function indexOption(v: Values, name: string, limit: number, of: string): number | undefined {
  const value = v[name];
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n))
    throw new AttnvizError(`--${name} must be a non-negative integer, not "${String(value)}"`);
  if (n >= limit) throw new AttnvizError(`--${name} ${n} is out of range: the data has ${limit} ${of}`);
  return n;
}

/** --layer, --head, --token, --key as neuron view options (token expanded), checked against the data. */
export function neuronOptions(v: Values, a: Attention): Record<string, unknown> {
  const [L, H, T, K] = a.attention.dims;
  const layer = indexOption(v, 'layer', L, 'layers'),
    head = indexOption(v, 'head', H, 'heads'),
    token = indexOption(v, 'token', T, 'tokens'),
    key = indexOption(v, 'key', K, 'key tokens');
  if (key !== undefined && token === undefined) throw new AttnvizError('--key needs --token (the query token)');
  if ((token !== undefined || key !== undefined) && (!a.query || !a.key))
    throw new AttnvizError('--token and --key need queries and keys (q/k), and this data has none');
  if (token !== undefined && key !== undefined && isMasked(a, layer ?? 0, token, key))
    throw new AttnvizError(`--key ${key} is masked for --token ${token} (after it, or outside its window)`);
  return {
    ...(layer !== undefined ? { layer } : {}),
    ...(head !== undefined ? { head } : {}),
    ...(token !== undefined ? { selected: token, expanded: true } : {}),
    ...(key !== undefined ? { key } : {}),
  };
}

/** The part of encoder-decoder data named by --part (default encoder); other data has only one. */
function partOf(v: Values, a: Attention): Attention {
  const part = v.part;
  if (part === undefined) return attentionPart(a, 'encoder');
  if (!ATTENTION_PARTS.includes(part as AttentionPart))
    throw new AttnvizError(`--part must be one of ${ATTENTION_PARTS.join(', ')}, not "${String(part)}"`);
  if (!a.encoderDecoder && part !== 'encoder') throw new AttnvizError(`--part ${part} needs encoder-decoder data`);
  return attentionPart(a, part as AttentionPart);
}

const num = (x: number) => (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(4));

/** The report as text for the terminal. */
function summary(r: NeuronReport): string {
  const k = r.key;
  const lines = [
    `layer ${r.layer} head ${r.head}, query ${JSON.stringify(r.query.token)} (${r.query.index}) → key ` +
      `${JSON.stringify(k.token)} (${k.key}); head size ${r.headSize}${r.rotary ? ', q/k after RoPE' : ''}`,
    `q · k = ${num(k.dot)}, × ${num(k.scale)}` +
      (k.positionBias === null ? '' : ` + position bias ${num(k.positionBias)}`) +
      ` = score ${k.score === null ? 'masked' : num(k.score)}; attention ${num(k.attention)}; ${r.score.formula}` +
      ` ${r.check.ok ? 'reproduces' : 'does NOT reproduce'} the attention row` +
      ` (max |Δ| ${r.check.maxDiff.toExponential(1)})`,
    '',
    'dim        q_n        k_n  q_n × k_n  share of q·k',
    ...k.terms
      .slice(0, 12)
      .map(
        (t) =>
          `${String(t.dim).padStart(3)} ${num(t.q).padStart(10)} ${num(t.k).padStart(10)} ` +
          num(t.product).padStart(10) +
          `  ${(t.share * 100).toFixed(1).padStart(10)} %${k.top.includes(t.dim) ? '  top' : ''}`,
      ),
    '',
    `whole row (${r.row.keys} keys): share of the scores' variance across keys by dimension`,
    ...r.row.dims
      .slice(0, 12)
      .map(
        (d) =>
          `${String(d.dim).padStart(13)}  ${(d.share * 100).toFixed(1).padStart(6)} %` +
          `${typeof d.dim === 'number' && r.row.top.includes(d.dim) ? '  top' : ''}`,
      ),
  ];
  return lines.join('\n');
}

export const neurons: Command = {
  name: 'neurons',
  synopsis: `neurons (--model <m> --text "<A>" [--pair "<B>"] | --from <file.safetensors>)
        --layer L --head H --token i [--key j] [--part encoder|decoder|cross]
        [-o <out.json|out.html|out.png|out.svg>] [--theme light|dark] [--scale S]`,
  description: `Which head dimensions make query token i's scores: the q ⊙ k terms for key j (default: the key
i attends to most) by size with their share of q · k, and the dimensions that drive the whole row's pattern.
Prints a summary; -o writes them as JSON, or the neuron view expanded on token i (PNG: --scale pixels per CSS px,
default 1).`,
  options: {
    ...MODEL_OPTIONS,
    from: { type: 'string' },
    part: { type: 'string' },
    layer: { type: 'string' },
    head: { type: 'string' },
    token: { type: 'string' },
    key: { type: 'string' },
    theme: { type: 'string' },
    scale: { type: 'string' },
    out: { type: 'string', short: 'o' },
  },
  async run(v) {
    for (const name of ['layer', 'head', 'token'])
      if (v[name] === undefined) throw new AttnvizError(`missing --${name}`);
    const out = typeof v.out === 'string' ? v.out : null;
    const format = out === null ? null : extname(out).slice(1).toLowerCase();
    if (format !== null && !['json', 'html', 'png', 'svg'].includes(format))
      throw new AttnvizError(`--out must end in .json, .html, .png or .svg, not "${out}"`);
    const scale = await scaleOption(v.scale, format);
    if (v.theme !== undefined && v.theme !== 'light' && v.theme !== 'dark')
      throw new AttnvizError(`--theme must be light or dark, not "${String(v.theme)}"`);
    const all = await attentionOrFile(v);
    const a = partOf(v, all);
    const options = neuronOptions(v, a) as { layer: number; head: number; selected: number; key?: number };
    const report = neuronReport(a, options.layer, options.head, options.selected, options.key);
    const { key: k, row: r } = report;
    const numbers = [k.dot, k.score ?? 0, ...k.terms.map((t) => t.product), ...r.dims.map((d) => d.share + d.std)];
    if (!numbers.every(Number.isFinite))
      throw new AttnvizError(`layer ${report.layer} head ${report.head} token ${k.query}: q/k hold non-finite values`);
    if (out === null) {
      console.log(summary(report));
      return;
    }
    if (format === 'json') {
      await writeFileAtomic(out, Buffer.from(`${JSON.stringify(report, null, 1)}\n`));
    } else {
      const view = {
        ...options,
        key: report.key.key,
        // Both checked above: --part by partOf, --theme light or dark.
        ...(v.part !== undefined ? { part: v.part as AttentionPart } : {}),
        ...(v.theme !== undefined ? { theme: v.theme as 'light' | 'dark' } : {}),
      };
      // The views and the image renderer load only when an image or page is asked for.
      const bytes =
        format === 'html'
          ? (await import('../export/html.js')).renderHtml(all, { view: 'neuron', options: view })
          : (await import('../export/image.js')).viewImage(all, 'neuron', view, format as 'png' | 'svg', scale);
      await writeFileAtomic(out, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
    }
    console.error(
      `wrote ${out}: layer ${report.layer} head ${report.head}, token ${report.query.index} → key ${report.key.key}`,
    );
  },
};
