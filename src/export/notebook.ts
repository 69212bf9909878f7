/**
 * Views in notebooks (the Deno Jupyter kernel, VS Code's notebooks): `headView(…)` returns an object that the
 * kernel displays through `Symbol.for('Jupyter.display')` — a MIME bundle whose HTML is an iframe holding the
 * standalone page (export/html.ts). The iframe keeps each view's script, styles and state apart, so several
 * views in one notebook stay independent, and the page loads nothing from the network. The page reports its
 * height to the iframe's host script; where outputs run no script, the iframe keeps its first height.
 *
 * The call shape is BertViz's: `headView({ attention, tokens, sentenceBStart, layer, heads })` with nested
 * arrays, Hugging Face's per-layer list or typed arrays (core/from-arrays.ts) — or an Attention and options.
 */
import type { Attention } from '../core/attention.js';
import { type ArraysInput, attentionFromArrays, isAttention } from '../core/from-arrays.js';
import { AttnvizError } from '../core/errors.js';
import { escapeXml } from '../views/painter.js';
import type { ViewName } from '../views/mount.js';
import { renderHtml } from './html.js';

const ARRAY_FIELDS = ['attention', 'tokens', 'sentenceBStart', 'query', 'key', 'causal', 'batch', 'text', 'model'];

/** What a notebook cell displays; `html` is the output's HTML for kernels without the display protocol. */
export class NotebookView {
  constructor(readonly html: string) {}

  [Symbol.for('Jupyter.display')](): Record<string, string> {
    return { 'text/html': this.html };
  }

  toString(): string {
    return this.html;
  }
}

let frames = 0;

/** A view of `data` as a notebook output; view options may also sit in `data` itself, as in BertViz. */
export function notebookView(
  view: ViewName,
  data: Attention | (ArraysInput & Record<string, unknown>),
  options: Record<string, unknown> = {},
): NotebookView {
  if (data === null || typeof data !== 'object' || !('attention' in data) || !('tokens' in data))
    throw new AttnvizError(`${view}View needs { attention, tokens } or an Attention`);
  const attention = isAttention(data) ? data : attentionFromArrays(data);
  const inline = isAttention(data)
    ? {}
    : Object.fromEntries(Object.entries(data).filter(([k]) => !ARRAY_FIELDS.includes(k)));
  const id = `attnviz-frame-${process.pid}-${++frames}`;
  const page = renderHtml(attention, { view, options: { ...inline, ...options }, frameId: id });
  const T = attention.tokens.length;
  const height = view === 'model' ? 720 : Math.min(900, 160 + 22 * T);
  const html =
    `<iframe id="${id}" title="attnviz ${view} view" sandbox="allow-scripts allow-downloads" ` +
    `style="width:100%;height:${height}px;border:0" srcdoc="${escapeXml(page)}"></iframe>` +
    `<script>(() => { const f = document.getElementById(${JSON.stringify(id)}); addEventListener('message', (e) => {` +
    ` if (f && e.source === f.contentWindow && e.data && e.data.attnvizFrame === f.id) f.style.height = ` +
    `e.data.height + 'px'; }); })();</script>`;
  return new NotebookView(html);
}

type Input = Attention | (ArraysInput & Record<string, unknown>);
export const headView = (data: Input, options?: Record<string, unknown>) => notebookView('head', data, options);
export const modelView = (data: Input, options?: Record<string, unknown>) => notebookView('model', data, options);
export const neuronView = (data: Input, options?: Record<string, unknown>) => notebookView('neuron', data, options);
