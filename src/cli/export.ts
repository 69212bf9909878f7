/** `attnviz export`: a view as standalone HTML, PNG or SVG, from a model run or an attention file. */
import { extname } from 'node:path';
import { readAttentionFile, writeFileAtomic } from '../core/files.js';
import { AttnvizError } from '../core/errors.js';
// The views, the HTML export and the image renderer are imported when export runs, so that the other
// commands start without loading them.
import { MODEL_OPTIONS, optionalString, required, type Command } from './command.js';
import { aggregated, attentionFrom } from './extract.js';
import { neuronOptions } from './neurons.js';
import { scaleOption } from './outputs.js';

export const exportCommand: Command = {
  name: 'export',
  synopsis: `export --view head|model|neuron (--model <m> --text "<A>" [--pair "<B>"] | --from <file.safetensors>)
       -o <out.html|out.png|out.svg> [--layer N] [--theme light|dark] [--aggregate mean|max|rollout|all]
       [--head H --token i [--key j]] [--scale S] [--allow-invalid]`,
  description: `Write a view as one self-contained HTML file (works offline, from file://) or as a PNG or SVG image
(drawn in Node, no browser; --scale: PNG pixels per CSS px, default 1, at most 8). The data comes from a model
run (--model and --text, as in extract) or from an attention file (--from), not both. --aggregate: the head or
model view of the pseudo-layers (as for extract); all: a "Layers:" select in the page switches between the heads
and each aggregate (an image shows the heads). The neuron view opens on --head, with token i expanded (q, k,
q × k, q · k, softmax and the contributions of key j) when --token is given. An attention file whose values
are not probabilities (NaN, Inf, rows not summing to 1) is an error; --allow-invalid shows it under a warning
banner.`,
  options: {
    ...MODEL_OPTIONS,
    from: { type: 'string' },
    view: { type: 'string' },
    out: { type: 'string', short: 'o' },
    layer: { type: 'string' },
    head: { type: 'string' },
    token: { type: 'string' },
    key: { type: 'string' },
    theme: { type: 'string' },
    aggregate: { type: 'string' },
    scale: { type: 'string' },
    'allow-invalid': { type: 'boolean' },
  },
  async run(v) {
    const { VIEWS } = await import('../views/mount.js');
    const view = VIEWS.find((name) => name === required(v, 'view'));
    if (view === undefined)
      throw new AttnvizError(`--view must be one of ${VIEWS.join(', ')}, not "${String(v.view)}"`);
    for (const name of ['head', 'token', 'key'])
      if (v[name] !== undefined && view !== 'neuron') throw new AttnvizError(`--${name} is for --view neuron`);
    const out = required(v, 'out');
    const format = extname(out).slice(1).toLowerCase();
    if (format !== 'html' && format !== 'png' && format !== 'svg')
      throw new AttnvizError(`--out must end in .html, .png or .svg, not "${out}"`);
    const scale = await scaleOption(v.scale, format);
    const options: Record<string, unknown> = {};
    if (typeof v.layer === 'string') {
      const layer = Number(v.layer);
      if (!Number.isInteger(layer) || layer < 0)
        throw new AttnvizError(`--layer must be a layer index, not "${v.layer}"`);
      options.layer = layer;
    }
    if (v.theme !== undefined) {
      if (v.theme !== 'light' && v.theme !== 'dark')
        throw new AttnvizError(`--theme must be light or dark, not "${String(v.theme)}"`);
      options.theme = v.theme;
    }
    const from = optionalString(v, 'from');
    if (from !== undefined) {
      const conflicting = Object.keys(MODEL_OPTIONS).filter((name) => v[name] !== undefined);
      if (conflicting.length > 0)
        throw new AttnvizError(
          `--from reads a saved attention file: it cannot be combined with ` +
            conflicting.map((n) => `--${n}`).join(', '),
        );
    }
    if (v.aggregate !== undefined && view === 'neuron')
      throw new AttnvizError('--aggregate has no queries or keys to show in the neuron view: use head or model');
    // --aggregate all: the page offers the model's heads and each aggregate in a "Layers:" select.
    if (v.aggregate === 'all') options.aggregates = true;
    let warning: string | undefined;
    const onInvalid = v['allow-invalid'] === true ? (problem: string) => (warning = problem) : undefined;
    const a = aggregated(from !== undefined ? await readAttentionFile(from, { onInvalid }) : await attentionFrom(v), v);
    if (warning) console.error(`attnviz: warning: ${warning}: shown anyway (--allow-invalid)`);
    if (typeof options.layer === 'number' && options.layer >= a.attention.dims[0])
      throw new AttnvizError(`--layer ${options.layer} is out of range: the data has ${a.attention.dims[0]} layers`);
    if (view === 'neuron') Object.assign(options, neuronOptions(v, a));
    const bytes =
      format === 'html'
        ? (await import('../export/html.js')).renderHtml(a, { view, options, warning })
        : (await import('../export/image.js')).viewImage(a, view, options, format, scale);
    await writeFileAtomic(out, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
    console.error(`wrote ${out}: ${view} view of ${a.tokens.length} tokens`);
  },
};
