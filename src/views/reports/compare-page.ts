/**
 * The compare report: the question grid and table (A − B per layer × head, ranked), two head views side by
 * side with layer, heads, hover and pins kept in step (tokens mapped through the alignment), and the
 * difference A − B of the shown layer (mean over the active heads) as a diverging heatmap.
 */
import { interpolateRdBu } from 'd3-scale-chromatic';
import type { Attention } from '../../core/attention.js';
import { prettifyToken } from '../../core/tokens.js';
import { el } from '../dom.js';
import { headView, type HeadView, type HeadViewState, type TokenRef } from '../head-view.js';
import type { CompareReport } from '../../analysis/report-data.js';
import { colorScale, fmt, headGrid, legend, sortableTable } from './widgets.js';

export function comparePage(root: HTMLElement, r: CompareReport, data: Map<string, Attention>): void {
  const a = data.get('a')!,
    b = data.get('b')!;
  root.append(
    el('h1', { text: 'Compare attention' }),
    el('p', { class: 'av-meta', text: `A: ${r.a.text}${r.a.pair ? ` / ${r.a.pair}` : ''} — ${r.a.model}` }),
    el('p', { class: 'av-meta', text: `B: ${r.b.text}${r.b.pair ? ` / ${r.b.pair}` : ''} — ${r.b.model}` }),
  );

  // ---- two head views, linked ------------------------------------------------------------------------
  const toB = new Map<number, number>(),
    toA = new Map<number, number>();
  r.alignment?.a.forEach((i, n) => {
    toB.set(i, r.alignment!.b[n]);
    toA.set(r.alignment!.b[n], i);
  });
  const mapRef = (t: TokenRef | null, map: Map<number, number>): TokenRef | null => {
    const index = t ? map.get(t.index) : undefined;
    return t && index !== undefined ? { side: t.side, index } : null;
  };
  let syncing = false;
  const follow = (other: () => HeadView | undefined, map: Map<number, number>) => (s: Readonly<HeadViewState>) => {
    const view = other();
    if (syncing || !view) return;
    syncing = true;
    view.update({
      layer: s.layer,
      active: [...s.active],
      hover: mapRef(s.hover, map),
      pinned: s.pinned.flatMap((t) => mapRef(t, map) ?? []),
    });
    syncing = false;
    drawDifference();
  };
  const hostA = el('div'),
    hostB = el('div');
  let viewA: HeadView | undefined, viewB: HeadView | undefined;
  viewA = headView(hostA, a, { theme: 'light', onChange: follow(() => viewB, toB) });
  viewB = headView(hostB, b, { theme: 'light', onChange: follow(() => viewA, toA) });
  // Reachable from their elements, as mountView does, so the SVG export (export/image.ts) finds them.
  for (const v of [viewA, viewB]) Object.defineProperty(v.element, 'attnvizView', { value: v });
  hostA.prepend(el('h3', { text: 'A' }));
  hostB.prepend(el('h3', { text: 'B' }));
  const views = el('div', { class: 'av-side av-compare-views' }, hostA, hostB);

  /** Both views at `layer` with only `head` active. */
  const open = (layer: number, head: number) => {
    const active = Array.from({ length: r.heads }, (_, h) => h === head);
    viewA!.update({ layer, active });
    grid?.select(layer, head);
    views.scrollIntoView({ block: 'nearest' });
  };

  // ---- the question ----------------------------------------------------------------------------------
  let grid: ReturnType<typeof headGrid> | undefined;
  const q = r.question;
  if (q) {
    const diff = new Map(q.rows.map((row) => [row.layer * r.heads + row.head, row]));
    const color = colorScale(
      'diverging',
      q.rows.map((row) => row.diff),
    );
    const maxAbs = Math.max(1e-12, ...q.rows.map((row) => Math.abs(row.diff)));
    grid = headGrid({
      layers: r.layers,
      heads: r.heads,
      value: (l, h) => diff.get(l * r.heads + h)!.diff,
      color,
      title: (l, h) => {
        const row = diff.get(l * r.heads + h)!;
        return `layer ${l} head ${h}: A ${fmt(row.a)}, B ${fmt(row.b)}, A − B ${fmt(row.diff)}`;
      },
      onClick: open,
    });
    const tokensOf = (tokens: string[], idx: number[]) =>
      idx.map((i) => `“${prettifyToken(tokens[i])}” #${i}`).join(' ');
    root.append(
      el('h2', { text: `Attention from ${q.from} to ${q.to}` }),
      el('p', {
        class: 'av-meta',
        text:
          `A: ${tokensOf(r.a.tokens, q.picked.a.from)} → ${tokensOf(r.a.tokens, q.picked.a.to)}; ` +
          `B: ${tokensOf(r.b.tokens, q.picked.b.from)} → ${tokensOf(r.b.tokens, q.picked.b.to)}`,
      }),
      el(
        'div',
        { class: 'av-side av-question' },
        el('div', {}, grid, legend(color, -maxAbs, maxAbs, 'A − B')),
        el(
          'div',
          {},
          sortableTable(
            [
              {
                label: 'rank',
                value: (row) => q.rows.indexOf(row) + 1,
                format: (row) => String(q.rows.indexOf(row) + 1),
              },
              { label: 'layer', value: (row) => row.layer, format: (row) => String(row.layer) },
              { label: 'head', value: (row) => row.head, format: (row) => String(row.head) },
              { label: 'A', value: (row) => row.a },
              { label: 'B', value: (row) => row.b },
              { label: 'A − B', value: (row) => row.diff },
            ],
            q.rows,
            (row) => ({ 'data-layer': row.layer, 'data-head': row.head, class: 'av-question-row' }),
            (row) => open(row.layer, row.head),
          ),
        ),
      ),
    );
  }

  root.append(el('h2', { text: 'Head views (linked)' }), views);

  // ---- difference A − B ------------------------------------------------------------------------------
  root.append(el('h2', { text: 'Difference A − B' }));
  const diffHost = el('div', { class: 'av-difference' });
  root.append(diffHost);
  const tip = el('div', { class: 'av-tip', hidden: true });
  document.body.append(tip);
  const canvas = el('canvas', { class: 'av-difference-canvas' });
  const caption = el('p', { class: 'av-meta' });
  const legendHost = el('div');
  if (!r.alignment) diffHost.append(el('p', { class: 'av-message', text: `No difference: ${r.alignmentError}` }));
  else {
    diffHost.append(
      el('p', { class: 'av-meta', text: `Tokens aligned by ${r.alignment.rule} (${r.alignment.a.length} tokens).` }),
      caption,
      legendHost,
      canvas,
    );
  }

  const LABEL = 110;
  let cellValues: { a: number; b: number }[][] = [];
  let cell = 16;
  function drawDifference(): void {
    const al = r.alignment;
    if (!al || !viewA) return;
    const s = viewA.state();
    const heads = s.active.flatMap((on, h) => (on ? [h] : []));
    const N = al.a.length;
    const [, H, Ta] = a.attention.dims;
    const Tb = b.attention.dims[2];
    const at = (x: Attention, T: number, i: number, j: number) => {
      let sum = 0;
      for (const h of heads) sum += x.attention.data[((s.layer * H + h) * T + i) * T + j];
      return sum / heads.length;
    };
    cellValues = al.a.map((i, r2) => al.a.map((j, c) => ({ a: at(a, Ta, i, j), b: at(b, Tb, al.b[r2], al.b[c]) })));
    cell = Math.max(4, Math.min(18, Math.floor(700 / N)));
    const size = LABEL + N * cell;
    canvas.width = size;
    canvas.height = size;
    const ctx = canvas.getContext('2d')!;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, size, size);
    ctx.font = `${Math.min(12, cell)}px sans-serif`;
    ctx.fillStyle = '#222';
    if (cell >= 8)
      al.labels.forEach((label, n) => {
        ctx.textAlign = 'right';
        ctx.fillText(label, LABEL - 4, LABEL + n * cell + cell * 0.75);
        ctx.save();
        ctx.translate(LABEL + n * cell + cell * 0.75, LABEL - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = 'left';
        ctx.fillText(label, 0, 0);
        ctx.restore();
      });
    // The colour scale spans ±max |A − B| of this layer, so small differences still show.
    const extent = Math.max(1e-6, ...cellValues.flat().map((v) => Math.abs(v.a - v.b)));
    const color = (d: number) => interpolateRdBu(0.5 - d / extent / 2);
    legendHost.replaceChildren(legend(color, -extent, extent, 'A − B (red: A attends more)'));
    cellValues.forEach((row, r2) =>
      row.forEach((v, c) => {
        ctx.fillStyle = color(v.a - v.b);
        ctx.fillRect(LABEL + c * cell, LABEL + r2 * cell, cell, cell);
      }),
    );
    const over = `head${heads.length > 1 ? 's' : ''} ${heads.join(', ')}`;
    caption.textContent = `Layer ${s.layer}, mean over ${over}: rows attend to columns.`;
    canvas.dataset.layer = String(s.layer);
    canvas.dataset.heads = heads.join(',');
  }
  canvas.addEventListener('mousemove', (e) => {
    const box = canvas.getBoundingClientRect();
    const c = Math.floor((e.clientX - box.left - LABEL) / cell),
      r2 = Math.floor((e.clientY - box.top - LABEL) / cell);
    const v = cellValues[r2]?.[c];
    if (!v || !r.alignment) {
      tip.hidden = true;
      return;
    }
    const cellName = `${r.alignment.labels[r2]} → ${r.alignment.labels[c]}`;
    tip.textContent = `${cellName}\nA ${fmt(v.a)}\nB ${fmt(v.b)}\nA − B ${fmt(v.a - v.b)}`;
    tip.style.left = `${e.clientX + 12}px`;
    tip.style.top = `${e.clientY + 12}px`;
    tip.hidden = false;
  });
  canvas.addEventListener('mouseleave', () => {
    tip.hidden = true;
  });
  drawDifference();
  if (q) open(q.rows[0].layer, q.rows[0].head);
}
