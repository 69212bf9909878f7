/**
 * Shared parts of the report pages (browser code): the page stylesheet, a layer × head grid of coloured
 * cells, a sortable table and number formatting. Text goes in as textContent (views/dom.ts el), never markup.
 */
import { interpolateRdBu, interpolateViridis } from 'd3-scale-chromatic';
import { el } from '../dom.js';

export const REPORT_CSS = `
.attnviz-report{padding:12px 16px;color:#222;font-size:14px;max-width:1400px}
.attnviz-report h1{font-size:20px;margin:0 0 6px}
.attnviz-report h2{font-size:16px;margin:18px 0 6px}
.attnviz-report .av-meta{color:#555;margin:2px 0}
.attnviz-report .av-message{background:#fff4e5;border:1px solid #f0b25a;padding:6px 10px;margin:8px 0}
.av-headgrid{display:inline-grid;gap:1px;font-size:11px;align-items:center}
.av-headgrid .av-cell{width:26px;height:20px;border:0;padding:0;cursor:pointer}
.av-headgrid .av-cell.av-selected{outline:2px solid #000;outline-offset:-2px}
.av-headgrid .av-axis{color:#555;text-align:center}
.av-table{border-collapse:collapse;font-size:13px;margin:6px 0}
.av-table th{cursor:pointer;text-align:right;padding:2px 8px;border-bottom:1px solid #999;user-select:none}
.av-table td{text-align:right;padding:1px 8px;white-space:nowrap;font-variant-numeric:tabular-nums}
.av-table tbody tr{cursor:pointer}
.av-table tbody tr:hover{background:#eef}
.av-scroll{max-height:420px;overflow:auto;display:inline-block}
.av-side{display:flex;flex-wrap:wrap;gap:16px}
.av-side>div{flex:1 1 520px;min-width:0}
.av-legend{display:flex;align-items:center;gap:6px;font-size:12px;color:#555;margin:4px 0}
.av-legend canvas{border:1px solid #ccc}
.av-tip{position:fixed;z-index:20;pointer-events:none;background:#fff;border:1px solid #999;padding:3px 6px;
font-size:12px;white-space:pre}
`;

/** Fixed precision for tables and tooltips (the JSON keeps full precision). */
export const fmt = (v: number | null | undefined, digits = 4) =>
  v === null || v === undefined ? '–' : v.toFixed(digits);

/** A colour scale: sequential (viridis over [lo, hi]) or diverging (red–blue, symmetric about 0). */
export function colorScale(kind: 'sequential' | 'diverging', values: (number | null)[]): (v: number | null) => string {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (kind === 'diverging') {
    const m = Math.max(1e-12, ...finite.map(Math.abs));
    // RdBu runs red (0) → blue (1): A − B > 0 is red.
    return (v) => (v === null ? '#ddd' : interpolateRdBu(0.5 - v / m / 2));
  }
  const lo = Math.min(...finite),
    hi = Math.max(...finite);
  return (v) => (v === null ? '#ddd' : interpolateViridis(hi > lo ? (v - lo) / (hi - lo) : 0.5));
}

export interface GridOptions {
  layers: number;
  heads: number;
  value: (layer: number, head: number) => number | null;
  color: (v: number | null) => string;
  /** Tooltip text of a cell. */
  title: (layer: number, head: number) => string;
  onClick: (layer: number, head: number) => void;
}

/** Layers as rows, heads as columns; each cell a button with data-layer, data-head, data-value and a title. */
export function headGrid(o: GridOptions): HTMLElement & { select(layer: number, head: number): void } {
  const grid = el('div', { class: 'av-headgrid', role: 'grid' });
  grid.style.gridTemplateColumns = `auto repeat(${o.heads}, 26px)`;
  grid.append(el('span', { class: 'av-axis', text: 'L \\ H' }));
  for (let h = 0; h < o.heads; h++) grid.append(el('span', { class: 'av-axis', text: String(h) }));
  const cells: HTMLElement[] = [];
  for (let l = 0; l < o.layers; l++) {
    grid.append(el('span', { class: 'av-axis', text: String(l) }));
    for (let h = 0; h < o.heads; h++) {
      const v = o.value(l, h);
      const b = el('button', {
        class: 'av-cell',
        type: 'button',
        'data-layer': l,
        'data-head': h,
        'data-value': v === null ? '' : String(v),
        title: o.title(l, h),
        'aria-label': o.title(l, h),
      });
      b.style.background = o.color(v);
      b.addEventListener('click', () => o.onClick(l, h));
      grid.append(b);
      cells.push(b);
    }
  }
  return Object.assign(grid, {
    select(layer: number, head: number) {
      cells.forEach((c, i) => c.classList.toggle('av-selected', i === layer * o.heads + head));
    },
  });
}

export interface Column<R> {
  label: string;
  value: (r: R) => number | string | null;
  format?: (r: R) => string;
}

/** A table sorted by clicking a header (again: reversed); rows carry `attrs` and call `onClick`. */
export function sortableTable<R>(
  columns: Column<R>[],
  rows: R[],
  attrs: (r: R) => Record<string, string | number>,
  onClick: (r: R) => void,
  sort: { column: number; descending: boolean } = { column: 0, descending: false },
): HTMLElement {
  const table = el('table', { class: 'av-table' });
  const head = el('tr');
  const body = el('tbody');
  table.append(el('thead', {}, head), body);
  const render = () => {
    const c = columns[sort.column];
    const key = (r: R) => c.value(r);
    const sorted = [...rows].sort((x, y) => {
      const a = key(x),
        b = key(y);
      if (a === b) return 0;
      if (a === null) return 1; // undefined values last either way
      if (b === null) return -1;
      const order = a < b ? -1 : 1;
      return sort.descending ? -order : order;
    });
    head.replaceChildren(
      ...columns.map((col, i) => {
        const th = el('th', {
          text: `${col.label}${i === sort.column ? (sort.descending ? ' ▼' : ' ▲') : ''}`,
          'data-column': i,
        });
        th.addEventListener('click', () => {
          sort = { column: i, descending: i === sort.column ? !sort.descending : true };
          render();
        });
        return th;
      }),
    );
    body.replaceChildren(
      ...sorted.map((r) => {
        const tr = el('tr', attrs(r));
        for (const col of columns) {
          const v = col.value(r);
          tr.append(el('td', { text: col.format ? col.format(r) : typeof v === 'number' ? fmt(v) : (v ?? '–') }));
        }
        tr.addEventListener('click', () => onClick(r));
        return tr;
      }),
    );
  };
  render();
  return el('div', { class: 'av-scroll' }, table);
}

/** A horizontal colour bar from `lo` to `hi`. */
export function legend(color: (v: number) => string, lo: number, hi: number, label: string): HTMLElement {
  const canvas = el('canvas', { width: 160, height: 10 });
  const ctx = canvas.getContext('2d');
  if (ctx)
    for (let x = 0; x < 160; x++) {
      ctx.fillStyle = color(lo + ((hi - lo) * x) / 159);
      ctx.fillRect(x, 0, 1, 10);
    }
  return el('div', { class: 'av-legend' }, fmt(lo, 3), canvas, fmt(hi, 3), ` ${label}`);
}
