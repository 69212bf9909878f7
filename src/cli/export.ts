/** `attnviz export`: a view as standalone HTML, PNG or SVG, from a model run or an attention file. */
import { extname } from 'node:path';
import { readAttentionFile } from '../core/attention-file.js';
import { AttnvizError } from '../core/errors.js';
import { writeFileAtomic } from '../core/safetensors.js';
import { renderHtml } from '../export/html.js';
import { renderImage } from '../export/image.js';
import { VIEWS, type ViewName } from '../views/mount.js';
import { MODEL_OPTIONS, optionalString, required, type Command } from './command.js';
import { attentionFrom } from './extract.js';

export const exportCommand: Command = {
  name: 'export',
  synopsis: `export --view head|model|neuron (--model <m> --text "<A>" [--pair "<B>"] | --from <file.safetensors>)
       -o <out.html|out.png|out.svg> [--layer N] [--theme light|dark]`,
  description: `Write a view as one self-contained HTML file (works offline, from file://) or as a PNG or SVG image
(images need Chromium: /usr/bin/chromium or CHROMIUM_PATH). The data comes from a model run (--model and
--text, as in extract) or from an attention file (--from), not both.`,
  options: {
    ...MODEL_OPTIONS,
    from: { type: 'string' },
    view: { type: 'string' },
    out: { type: 'string', short: 'o' },
    layer: { type: 'string' },
    theme: { type: 'string' },
  },
  async run(v) {
    const view = required(v, 'view') as ViewName;
    if (!VIEWS.includes(view)) throw new AttnvizError(`--view must be one of ${VIEWS.join(', ')}, not "${view}"`);
    const out = required(v, 'out');
    const format = extname(out).slice(1).toLowerCase();
    if (format !== 'html' && format !== 'png' && format !== 'svg')
      throw new AttnvizError(`--out must end in .html, .png or .svg, not "${out}"`);
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
    const a = from !== undefined ? await readAttentionFile(from) : await attentionFrom(v);
    if (typeof options.layer === 'number' && options.layer >= a.attention.dims[0])
      throw new AttnvizError(`--layer ${options.layer} is out of range: the data has ${a.attention.dims[0]} layers`);
    const html = renderHtml(a, { view, options });
    const bytes = format === 'html' ? html : await renderImage(html, format);
    await writeFileAtomic(out, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
    console.error(`wrote ${out}: ${view} view of ${a.tokens.length} tokens`);
  },
};
