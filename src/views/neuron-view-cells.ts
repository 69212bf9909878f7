/**
 * Tooltips on the expanded neuron view's cells: the exact value under the pointer (q, k, their product, the
 * score and softmax), and a click on a key's row picks that key for the panel.
 */
import { headVector, scoreScale } from '../analysis/neuron.js';
import type { NeuronViewContext } from './neuron-view.js';
import { D_X, DOT, K_X, P_X, Q_X, ROW, TOP, VEC_W } from './neuron-scene.js';
import type { Tooltip } from './tooltip.js';
import type { RowWindow } from './virtual-rows.js';

/** The tooltip and click handling of `canvas`, whose top is at body y `drawn().y0`. */
export function cellTooltips(
  canvas: HTMLCanvasElement,
  v: NeuronViewContext,
  tooltip: Tooltip,
  drawn: () => RowWindow | null,
): void {
  const bodyPoint = (e: MouseEvent) => {
    const box = canvas.getBoundingClientRect();
    return { x: e.clientX - box.left, y: e.clientY - box.top + (drawn()?.y0 ?? 0) };
  };
  canvas.addEventListener('mousemove', (e) => {
    const { x, y } = bodyPoint(e);
    const h = cellAt(v, drawn(), x, y);
    if (h) tooltip.show(h.text, e.clientX, e.clientY);
    else tooltip.hide();
  });
  canvas.addEventListener('mouseleave', () => tooltip.hide());
  canvas.addEventListener('click', (e) => {
    const { x, y } = bodyPoint(e);
    const h = cellAt(v, drawn(), x, y);
    if (h?.key !== null && h?.key !== undefined) v.update({ key: h.key });
  });
}

/** The exact value under (x, y) of the body, as tooltip text, and the key row it is on; null off the cells. */
function cellAt(
  v: NeuronViewContext,
  drawn: RowWindow | null,
  x: number,
  y: number,
): { text: string; key: number | null } | null {
  const { data, drawing } = v;
  const { label, keyLabel } = drawing;
  if (!drawing.expandedNow() || !drawn) return null;
  const { rows, cols } = v.shown();
  const s = v.state();
  const n = Math.floor((y - TOP) / ROW);
  const d = drawing.size(),
    cell = Math.floor(((x - (x >= P_X ? P_X : x >= K_X ? K_X : Q_X)) / VEC_W) * d);
  const vec = (t: typeof data.query, i: number) => headVector(t!, s.layer, s.head, i);
  if (x >= Q_X && x < Q_X + VEC_W && n >= 0 && n < rows.length) {
    const i = rows[n];
    return { text: `“${label(i)}” (${i}) q[${cell}] = ${vec(data.query, i)[cell]}`, key: null };
  }
  if (n < 0 || n >= cols.length) return null;
  const j = cols[n];
  if (x >= K_X && x < K_X + VEC_W)
    return { text: `“${keyLabel(j)}” (${j}) k[${cell}] = ${vec(data.key, j)[cell]}`, key: j };
  // The pointer is over a drawn row, so its key is in the drawn window's columns.
  const cs = drawing.windowColumns(drawn),
    c = n - drawn.first;
  if (!cs || c < 0 || c >= cs.keys.length || cs.masked[c]) return null;
  if (x >= P_X && x < P_X + VEC_W) {
    const t = cs.products[c]![cell],
      share = (t / (cs.dots[c]! / scoreScale(data))) * 100;
    return { text: `q[${cell}] × k[${cell}] = ${t} (${share.toFixed(1)} % of q · k)`, key: j };
  }
  if (x >= D_X && x < D_X + DOT)
    return {
      text:
        `“${label(cs.query)}” → “${keyLabel(j)}”\nscore ${cs.dots[c]}\n` +
        `softmax ${cs.computed[c]}\nattention ${cs.softmax[c]}`,
      key: j,
    };
  return null;
}
