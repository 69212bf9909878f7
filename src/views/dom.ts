/**
 * Small DOM helpers shared by the views. Text always goes in through textContent (never innerHTML), so a
 * token such as `<script>` or `" onmouseover="…` shows literally and runs nothing.
 */

type Attrs = Record<string, string | number | boolean | undefined>;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') node.className = String(v);
    else if (k === 'text') node.textContent = String(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) node.append(c);
  return node;
}

/** A labelled <select>; `onChange` gets the chosen value. */
export function select<T extends string | number>(
  label: string,
  options: readonly { value: T; label: string }[],
  value: T,
  onChange: (v: T) => void,
): HTMLLabelElement {
  const s = el('select');
  for (const o of options)
    s.append(el('option', { value: String(o.value), text: o.label, selected: o.value === value }));
  s.addEventListener('change', () => onChange(options[s.selectedIndex].value));
  return el('label', { class: 'av-control' }, `${label} `, s);
}

export function checkbox(label: string, checked: boolean, onChange: (v: boolean) => void): HTMLLabelElement {
  const c = el('input', { type: 'checkbox', checked });
  c.addEventListener('change', () => onChange(c.checked));
  return el('label', { class: 'av-control' }, c, ` ${label}`);
}

export function numberInput(
  label: string,
  value: number | null,
  attrs: Attrs,
  onChange: (v: number | null) => void,
): HTMLLabelElement {
  const i = el('input', { type: 'number', value: value ?? '', ...attrs });
  i.addEventListener('input', () => onChange(i.value === '' ? null : Number(i.value)));
  return el('label', { class: 'av-control' }, `${label} `, i);
}

/** A text field; `onChange` gets its value when the user commits it (Enter or leaving the field). */
export function textInput(label: string, value: string, attrs: Attrs, onChange: (v: string) => void): HTMLLabelElement {
  const i = el('input', { type: 'text', value, ...attrs });
  i.addEventListener('change', () => onChange(i.value));
  return el('label', { class: 'av-control' }, `${label} `, i);
}

export function button(label: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', { type: 'button', class: 'av-button', text: label });
  b.addEventListener('click', onClick);
  return b;
}

/** Saves a blob under `name` through a temporary object URL (works from file:// with no server). */
export function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A canvas sized in CSS pixels, backed at the device pixel ratio (or `scale`) so lines stay sharp; cleared. */
export function sizeCanvas(
  canvas: HTMLCanvasElement,
  width: number,
  height: number,
  scale?: number,
): CanvasRenderingContext2D {
  const dpr = scale ?? (window.devicePixelRatio || 1);
  const w = Math.ceil(width * dpr),
    h = Math.ceil(height * dpr);
  const ctx = canvas.getContext('2d')!;
  // Same size: cleared and reset in place; setting width or height reallocates the bitmap (slow when redrawn
  // on every hover). reset() is recent; a browser without it gets the assignment, which clears too.
  if (canvas.width === w && canvas.height === h && 'reset' in ctx) ctx.reset();
  else {
    canvas.width = w;
    canvas.height = h;
  }
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}
