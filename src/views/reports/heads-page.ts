/**
 * The head finder report: a metric select, the layer × head grid coloured by the metric's corpus mean, a
 * table of every head sortable by any metric, and for the clicked head the corpus text where the metric is
 * highest, opened in the head view at that layer with only that head active.
 */
import type { Attention } from '../../core/attention.js';
import { el, select } from '../dom.js';
import { headView } from '../head-view.js';
import type { HeadsReport } from '../../analysis/report-data.js';
import { colorScale, fmt, headGrid, legend, sortableTable } from './widgets.js';

export function headsPage(root: HTMLElement, r: HeadsReport, data: Map<string, Attention>): void {
  const H = r.heads;
  root.append(
    el('h1', { text: 'Head finder' }),
    el('p', {
      class: 'av-meta',
      text: `${r.model} — ${r.layers} layers × ${H} heads — ${r.texts.length} texts scored`,
    }),
  );
  if (r.skipped.length)
    root.append(
      el('p', {
        class: 'av-message av-skipped',
        text: `${r.skipped.length} text${r.skipped.length > 1 ? 's' : ''} skipped: ${r.skipped
          .slice(0, 3)
          .map((s) => `${s.where} (${s.reason})`)
          .join('; ')}${r.skipped.length > 3 ? '; …' : ''}`,
      }),
    );

  let metric = 0;
  const gridHost = el('div', { class: 'av-headgrid-host' });
  const panel = el('div', { class: 'av-head-panel' });
  const selected = { layer: -1, head: -1 };
  const controls = el(
    'div',
    { class: 'av-meta' },
    select(
      'Metric:',
      r.metrics.map((m, i) => ({ value: i, label: m.name })),
      0,
      (i) => {
        metric = i;
        drawGrid();
        if (selected.layer >= 0) openHead(selected.layer, selected.head);
      },
    ),
  );
  const description = el('span', { class: 'av-meta' });
  controls.append(' ', description);

  function drawGrid(): void {
    const s = r.summary[metric];
    const color = colorScale(
      'sequential',
      s.map((x) => x.mean),
    );
    const means = s.map((x) => x.mean).filter((v): v is number => v !== null);
    description.textContent = r.metrics[metric].description;
    const grid = headGrid({
      layers: r.layers,
      heads: H,
      value: (l, h) => s[l * H + h].mean,
      color,
      title: (l, h) => {
        const x = s[l * H + h];
        return `layer ${l} head ${h}: ${r.metrics[metric].name} ${fmt(x.mean)} ± ${fmt(x.std)} (${x.n} texts)`;
      },
      onClick: openHead,
    });
    gridHost.replaceChildren(
      grid,
      means.length ? legend((v) => color(v), Math.min(...means), Math.max(...means), 'corpus mean') : '',
    );
    if (selected.layer >= 0) grid.select(selected.layer, selected.head);
  }

  function openHead(layer: number, head: number): void {
    selected.layer = layer;
    selected.head = head;
    gridHost.querySelectorAll('.av-cell').forEach((c) => {
      const b = c as HTMLElement;
      b.classList.toggle('av-selected', b.dataset.layer === String(layer) && b.dataset.head === String(head));
    });
    const s = r.summary[metric][layer * H + head];
    const name = r.metrics[metric].name;
    panel.replaceChildren(el('h2', { text: `Layer ${layer}, head ${head}` }));
    if (s.bestText < 0) {
      panel.append(el('p', { class: 'av-message', text: `${name} is not defined for this head on any text.` }));
      return;
    }
    const attention = data.get(`t${s.bestText}`);
    panel.append(
      el('p', {
        class: 'av-meta av-best',
        'data-text': s.bestText,
        text: `Highest ${name}: ${fmt(s.best)} on text ${s.bestText + 1}: ${r.texts[s.bestText]}`,
      }),
    );
    if (!attention) {
      panel.append(el('p', { class: 'av-message', text: 'The attention of this text is not in the report.' }));
      return;
    }
    const host = el('div', { class: 'av-best-view' });
    panel.append(host);
    headView(host, attention, { layer, heads: [head], theme: 'light' });
    panel.scrollIntoView({ block: 'nearest' });
  }

  type Row = { layer: number; head: number };
  const rows: Row[] = Array.from({ length: r.layers * H }, (_, lh) => ({ layer: Math.floor(lh / H), head: lh % H }));
  const table = sortableTable<Row>(
    [
      { label: 'layer', value: (x) => x.layer, format: (x) => String(x.layer) },
      { label: 'head', value: (x) => x.head, format: (x) => String(x.head) },
      ...r.metrics.map((m, i) => ({
        label: m.name,
        value: (x: Row) => r.summary[i][x.layer * H + x.head].mean,
        format: (x: Row) => {
          const s = r.summary[i][x.layer * H + x.head];
          return s.mean === null ? '–' : `${fmt(s.mean, 3)} ± ${fmt(s.std, 3)}`;
        },
      })),
    ],
    rows,
    (x) => ({ 'data-layer': x.layer, 'data-head': x.head }),
    (x) => openHead(x.layer, x.head),
    { column: 2, descending: true },
  );

  drawGrid();
  root.append(controls, el('div', { class: 'av-side' }, el('div', {}, gridHost), el('div', {}, table)), panel);
}
