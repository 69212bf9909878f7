/**
 * The neuron view's contributions panel (analysis/contributions.ts as tables): for the selected query token
 * and one key, the q ⊙ k terms by size with their share of q·k; for the whole row, the dimensions that drive
 * the pattern. One description of the tables feeds both the page (DOM, text set through textContent) and the
 * SVG/PNG export (painter text), so the two say the same.
 */
import { TOP_MASS, type KeyContributions, type RowContributions } from '../analysis/contributions.js';
import { el } from './dom.js';
import type { Painter } from './painter.js';
import type { Theme } from './palette.js';

/** Table rows listed; the rest is summed up in one line. */
export const PANEL_ROWS = 12;

export interface PanelRow {
  /** A head dimension, or 'position bias'. */
  dim: number | 'position bias';
  cells: string[];
  /** One of the top dimensions (highlighted in the q and k rows). */
  top: boolean;
  /** Exact values, for the row's tooltip. */
  title: string;
  /** Exact values by column name, as data attributes (tests, scripts). */
  values: Record<string, number>;
}

export interface PanelTable {
  kind: 'key' | 'row';
  title: string;
  lines: string[];
  header: string[];
  rows: PanelRow[];
  /** What the rows left out add up to, or ''. */
  rest: string;
}

const num = (v: number) =>
  v === 0 ? '0' : Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toPrecision(4);
const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
const sum = <T>(xs: readonly T[], f: (x: T) => number) => xs.reduce((s, x) => s + f(x), 0);

/** The two tables: the key's terms (when a key is given) and the row's dimensions. */
export function contributionTables(
  key: KeyContributions | null,
  row: RowContributions,
  label: { query: string; key: (j: number) => string },
  notes: { rotary: string | null; formula: string },
): PanelTable[] {
  const tables: PanelTable[] = [];
  if (key) {
    const top = new Set(key.top);
    const scaled = `q · k × ${num(key.scale)}`;
    const score = key.masked
      ? 'masked (j > i): no score'
      : key.positionBias === null
        ? `score ${scaled} = ${num(key.score!)}`
        : `score ${scaled} + position bias = ${num(key.dot * key.scale)} + ${num(key.positionBias)} = ` +
          num(key.score!);
    const rest = key.terms.slice(PANEL_ROWS);
    tables.push({
      kind: 'key',
      title: `“${label.query}” (${key.query}) → “${label.key(key.key)}” (${key.key})`,
      lines: [
        `q · k = ${num(key.dot)}; ${score}; attention ${num(key.attention)}`,
        `Terms q_n × k_n by size; the top ${key.top.length} (${Math.round(TOP_MASS * 100)} % of Σ|terms|) framed.`,
      ],
      header: ['dim', 'q_n', 'k_n', 'q_n × k_n', 'share of q·k'],
      rows: key.terms.slice(0, PANEL_ROWS).map((t) => ({
        dim: t.dim,
        cells: [String(t.dim), num(t.q), num(t.k), num(t.product), pct(t.share)],
        top: top.has(t.dim),
        title: `dimension ${t.dim}: q ${t.q} × k ${t.k} = ${t.product} (${pct(t.share)} of q · k = ${key.dot})`,
        values: { q: t.q, k: t.k, product: t.product, share: t.share },
      })),
      rest: rest.length
        ? `${rest.length} more: Σ ${num(sum(rest, (t) => t.product))} (${pct(sum(rest, (t) => t.share))})`
        : '',
    });
  }
  const top = new Set(row.top);
  const rest = row.dims.slice(PANEL_ROWS);
  tables.push({
    kind: 'row',
    title: `Whole row of “${label.query}”: ${row.keys} key${row.keys === 1 ? '' : 's'}`,
    lines: [
      row.variance === 0
        ? 'The scores do not differ across keys: no pattern to explain.'
        : `Share of the scores' variance across keys (${num(row.variance)}) by dimension, with the mean and sd ` +
          'of its term over the keys; top ones marked ▲.',
      ...(notes.rotary ? [notes.rotary] : []),
      notes.formula,
    ],
    header: ['dim', 'share', 'mean term', 'sd'],
    rows: row.dims.slice(0, PANEL_ROWS).map((d) => ({
      dim: d.dim,
      cells: [String(d.dim), pct(d.share), num(d.mean), num(d.std)],
      top: typeof d.dim === 'number' && top.has(d.dim),
      title:
        `${typeof d.dim === 'number' ? `dimension ${d.dim}` : d.dim}: share ${d.share}, mean ${d.mean}, ` +
        `sd ${d.std}`,
      values: { share: d.share, mean: d.mean, std: d.std },
    })),
    rest: rest.length ? `${rest.length} more: ${pct(sum(rest, (d) => d.share))}` : '',
  });
  return tables;
}

/** The tables into `host` (replacing what it held). */
export function renderPanel(host: HTMLElement, tables: readonly PanelTable[]): void {
  host.replaceChildren(
    ...tables.map((t) => {
      const table = el(
        'table',
        { class: 'av-terms' },
        el('thead', {}, el('tr', {}, ...t.header.map((h) => el('th', { text: h })))),
        el(
          'tbody',
          {},
          ...t.rows.map((r) => {
            const tr = el('tr', { 'data-dim': String(r.dim), title: r.title, class: r.top ? 'av-top' : undefined });
            for (const [name, v] of Object.entries(r.values)) tr.dataset[name] = String(v);
            tr.append(...r.cells.map((c) => el('td', { text: c })));
            return tr;
          }),
        ),
      );
      return el(
        'section',
        { class: `av-contrib-${t.kind}` },
        el('h4', { text: t.title }),
        ...t.lines.map((l) => el('p', { text: l })),
        table,
        ...(t.rest ? [el('p', { class: 'av-rest', text: t.rest })] : []),
      );
    }),
  );
}

/** Line height of the panel's text in exports. */
const LINE = 16;
/** Right edges of the exported tables' columns (px): a narrow dim column, then the numbers. */
const DIM_W = 36,
  CELL_W = 84;
export const PANEL_W = DIM_W + 4 * CELL_W + 10;
/** Characters per exported note line (12-px text in PANEL_W). */
const WRAP = 58;

/** `text` cut into lines of at most `width` characters at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

/** The tables as painter text at (x, y); returns the height used. */
export function drawPanel(p: Painter, x: number, y: number, tables: readonly PanelTable[], theme: Theme): number {
  let yy = y;
  const text = (dx: number, s: string, o: { bold?: boolean; muted?: boolean; end?: boolean } = {}) =>
    p.text(x + dx, yy, s, {
      color: o.muted ? theme.mutedText : theme.text,
      size: 12,
      weight: o.bold ? 'bold' : 'normal',
      anchor: o.end ? 'end' : 'start',
    });
  const right = (c: number) => DIM_W + c * CELL_W;
  for (const t of tables) {
    text(0, t.title, { bold: true });
    yy += LINE;
    for (const l of t.lines.flatMap((l) => wrap(l, WRAP))) {
      text(0, l, { muted: true });
      yy += LINE;
    }
    t.header.forEach((h, c) => text(right(c), h, { bold: true, end: true }));
    yy += LINE;
    for (const r of t.rows) {
      if (r.top) p.rect(x, yy - LINE / 2, right(t.header.length - 1) + 4, LINE, theme.highlight);
      r.cells.forEach((cell, c) => text(right(c), cell, { end: true }));
      yy += LINE;
    }
    if (t.rest) {
      text(0, t.rest, { muted: true });
      yy += LINE;
    }
    yy += LINE / 2;
  }
  return yy - y;
}
