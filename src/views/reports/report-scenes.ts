/**
 * The head finder and generation reports as pictures: what each report page shows when it opens (heads-page.ts,
 * steps-page.ts), drawn on any Painter with no DOM, so `attnviz heads -o x.png` and `generate --report x.png`
 * are drawn in Node (export/image.ts) like the views. Same texts, colours (widgets.ts colorScale, the pages'
 * CSS) and order as the pages; laid out in one column of at most WIDTH px, text wrapped by `measure` (px of a
 * string at a font size, as a canvas measures it).
 */
import type { HeadsReport, StepsReport } from '../../analysis/report-data.js';
import { stepAttention, stepQuery } from '../../analysis/steps.js';
import type { Attention } from '../../core/attention.js';
import { prettifyToken } from '../../core/tokens.js';
import type { Scene } from '../head-lines.js';
import type { Painter, TextStyle } from '../painter.js';
import { colorScale, fmt } from './widgets.js';

/** px of `text` at `size` px (bold when `bold`). */
export type Measure = (text: string, size: number, bold?: boolean) => number;

const WIDTH = 1268;
const PAD = 16;
const INK = '#222222';
const MUTED = '#555555';
const RULE = '#999999';

/** Draw calls collected top to bottom; `y` is where the next block goes. */
class Column {
  y = 12;
  readonly calls: ((p: Painter) => void)[] = [];

  constructor(readonly measure: Measure) {}

  /** A line of text (or several, wrapped at spaces to the column's width) at `size` px. */
  text(text: string, size: number, o: { color?: string; bold?: boolean; gap?: number } = {}): void {
    const style: TextStyle = { color: o.color ?? INK, size, weight: o.bold ? 'bold' : 'normal' };
    for (const line of this.wrap(text, size, o.bold)) {
      const y = this.y + size * 0.6;
      this.calls.push((p) => p.text(PAD, y, line, style));
      this.y += size * 1.3;
    }
    this.y += o.gap ?? 4;
  }

  private wrap(text: string, size: number, bold?: boolean): string[] {
    const lines: string[] = [];
    let line = '';
    for (const word of text.split(' ')) {
      const next = line ? `${line} ${word}` : word;
      if (line && this.measure(next, size, bold) > WIDTH - 2 * PAD) {
        lines.push(line);
        line = word;
      } else line = next;
    }
    return [...lines, line];
  }

  scene(): Scene {
    const height = this.y + 12;
    return { width: WIDTH, height, draw: (p) => this.calls.forEach((c) => c(p)) };
  }
}

/** The head finder report as it opens: the first metric's grid, its legend and the table sorted by it. */
export function headsScene(r: HeadsReport, measure: Measure): Scene {
  const c = new Column(measure);
  const H = r.heads;
  c.text('Head finder', 20, { bold: true });
  c.text(`${r.model} — ${r.layers} layers × ${H} heads — ${r.texts.length} texts scored`, 14, { color: MUTED });
  if (r.skipped.length)
    c.text(
      `${r.skipped.length} text${r.skipped.length > 1 ? 's' : ''} skipped: ${r.skipped
        .slice(0, 3)
        .map((s) => `${s.where} (${s.reason})`)
        .join('; ')}${r.skipped.length > 3 ? '; …' : ''}`,
      14,
    );
  const s = r.summary[0];
  c.text(`Metric: ${r.metrics[0].name} ${r.metrics[0].description}`, 14, { color: MUTED, gap: 8 });

  // The grid: 26 × 20 px cells 1 px apart, the layer index left of each row and the head index above each column.
  const color = colorScale(
    'sequential',
    s.map((x) => x.mean),
  );
  // Whole px, so cells are crisp as the page's buttons.
  const top = Math.round(c.y),
    axis = 36;
  const cellX = (h: number) => PAD + axis + h * 27,
    cellY = (l: number) => top + 16 + l * 21;
  const axisStyle: TextStyle = { color: MUTED, size: 11, anchor: 'middle' };
  c.calls.push((p) => {
    p.text(PAD + axis / 2, top + 7, 'L \\ H', axisStyle);
    for (let h = 0; h < H; h++) p.text(cellX(h) + 13, top + 7, String(h), axisStyle);
    for (let l = 0; l < r.layers; l++) {
      p.text(PAD + axis / 2, cellY(l) + 10, String(l), axisStyle);
      for (let h = 0; h < H; h++) p.rect(cellX(h), cellY(l), 26, 20, color(s[l * H + h].mean));
    }
  });
  c.y = cellY(r.layers) + 6;
  const means = s.map((x) => x.mean).filter((v): v is number => v !== null);
  if (means.length) {
    const [lo, hi] = [Math.min(...means), Math.max(...means)];
    const y = c.y,
      left = PAD + measure(fmt(lo, 3), 12) + 6;
    c.calls.push((p) => {
      const style: TextStyle = { color: MUTED, size: 12 };
      p.text(PAD, y + 5, fmt(lo, 3), style);
      for (let x = 0; x < 160; x++) p.rect(left + x, y, 1, 10, color(lo + ((hi - lo) * x) / 159));
      p.rect(left, y, 160, 10, 'none', 1, { color: '#cccccc', width: 1 });
      p.text(left + 166, y + 5, `${fmt(hi, 3)} corpus mean`, style);
    });
    c.y += 22;
  }

  // The table, every head, sorted by the first metric's mean (undefined last), as the page opens it.
  const rows = Array.from({ length: r.layers * H }, (_, lh) => lh).sort((a, b) => {
    const x = s[a].mean,
      y = s[b].mean;
    return x === y ? 0 : x === null ? 1 : y === null ? -1 : y - x;
  });
  const columns = ['layer', 'head', ...r.metrics.map((m, i) => (i === 0 ? `${m.name} ▼` : m.name))];
  const cell = (lh: number, i: number) => {
    if (i < 2) return String(i === 0 ? Math.floor(lh / H) : lh % H);
    const x = r.summary[i - 2][lh];
    return x.mean === null ? '–' : `${fmt(x.mean, 3)} ± ${fmt(x.std, 3)}`;
  };
  const widths = columns.map(
    (name, i) => Math.max(measure(name, 13, true), ...rows.map((lh) => measure(cell(lh, i), 13))) + 16,
  );
  const y0 = c.y;
  c.calls.push((p) => {
    let x = PAD;
    columns.forEach((name, i) => {
      x += widths[i];
      p.text(x - 8, y0 + 9, name, { color: INK, size: 13, weight: 'bold', anchor: 'end' });
      rows.forEach((lh, k) => p.text(x - 8, y0 + 28 + k * 18, cell(lh, i), { color: INK, size: 13, anchor: 'end' }));
    });
    p.rect(PAD, y0 + 18, x - PAD, 1, RULE);
  });
  c.y = y0 + 20 + rows.length * 18;
  return c.scene();
}

/**
 * The generation report as it opens: the last step, the last layer, the mean over heads — the tokens, the step's
 * token with its alternatives, and the attention over the context when it was produced.
 */
export function stepsScene(r: StepsReport, a: Attention, measure: Measure): Scene {
  const c = new Column(measure);
  const [L, H] = a.attention.dims;
  c.text('Generation step by step', 20, { bold: true });
  c.text(
    `${r.model} — ${r.promptLength} prompt tokens, ${r.steps.length} generated ` +
      `(${r.temperature === 0 ? 'greedy' : `temperature ${r.temperature}`}; stopped: ${r.stopped})`,
    14,
    { color: MUTED },
  );
  if (!r.steps.length) {
    c.text('No token was generated.', 14);
    return c.scene();
  }
  const step = r.steps.length - 1,
    layer = L - 1;
  const position = r.promptLength + step,
    q = stepQuery(r.promptLength, step);
  c.text(`Step: ${step + 1} / ${r.steps.length}   Layer: ${layer}   Head: mean over heads`, 14, { gap: 10 });
  c.text('Tokens (grey underline: prompt, green: generated; click one to go to its step)', 16, { bold: true });
  strip(c, r.tokens.length, (i) => ({
    text: prettifyToken(r.tokens[i]),
    underline: i < r.promptLength ? '#888888' : '#22aa77',
    outline: i === position ? '#cc3333' : i === q ? '#3366cc' : undefined,
  }));
  const s = r.steps[step];
  c.text('The step', 16, { bold: true });
  c.text(
    `Token ${position}: “${prettifyToken(s.token)}” with probability ${fmt(s.probability)}, ` +
      `chosen by the output at position ${q} (“${prettifyToken(r.tokens[q])}”).`,
    14,
  );
  for (const [k, t] of [{ token: 'alternative', probability: null, id: -1 }, ...s.top].entries()) {
    // ► where the page has ▶: Arimo has no ▶.
    const label = k === 0 ? 'alternative' : `${t.id === s.id ? '► ' : ''}${prettifyToken(t.token)}`;
    const value = t.probability === null ? 'probability' : fmt(t.probability);
    const y = c.y + 9,
      bold = k === 0 ? ('bold' as const) : ('normal' as const);
    c.calls.push((p) => {
      p.text(PAD + 8, y, label, { color: INK, size: 13, weight: bold });
      p.text(PAD + 260, y, value, { color: INK, size: 13, weight: bold, anchor: 'end' });
    });
    c.y += 18;
  }
  c.y += 8;
  c.text('Attention over the context when it was produced', 16, { bold: true });
  const att = stepAttention(a, r.promptLength, step);
  const n = att.dims[2];
  const weights = Array.from({ length: n }, (_, j) => {
    let sum = 0;
    for (let h = 0; h < H; h++) sum += att.data[(layer * H + h) * n + j];
    return sum / H;
  });
  const max = Math.max(...weights, 1e-12);
  strip(c, n, (j) => ({
    text: prettifyToken(r.tokens[j]),
    underline: j < r.promptLength ? '#888888' : '#22aa77',
    // rgba(220, 60, 40, w / max) over white, as the page's span backgrounds.
    fill: { color: '#dc3c28', opacity: weights[j] / max },
  }));
  return c.scene();
}

interface StripToken {
  text: string;
  underline: string;
  outline?: string;
  fill?: { color: string; opacity: number };
}

/** Tokens as the pages' .av-strip spans: 13 px text, padded, underlined, wrapped at the column's width. */
function strip(c: Column, count: number, token: (i: number) => StripToken): void {
  const size = 14,
    lineH = 28;
  let x = PAD,
    y = c.y;
  for (let i = 0; i < count; i++) {
    const t = token(i);
    const w = c.measure(t.text, size) + 4;
    if (x > PAD && x + w > WIDTH - PAD) {
      x = PAD;
      y += lineH;
    }
    const [bx, by] = [x, y];
    c.calls.push((p) => {
      if (t.fill) p.rect(bx, by + 4, w, 20, t.fill.color, t.fill.opacity);
      p.rect(bx, by + 22, w, 2, t.underline);
      if (t.outline) p.rect(bx - 1, by + 3, w + 2, 22, 'none', 1, { color: t.outline, width: 2 });
      p.text(bx + 2, by + 14, t.text, { color: INK, size });
    });
    x += w + 2;
  }
  c.y = y + lineH + 8;
}
