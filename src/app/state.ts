/**
 * The app's state, which lives in the URL (query string) so a view can be shared: model (or the name of an
 * attention file opened in the page), texts, view, layer, heads, pinned tokens and theme. Parsing is
 * forgiving (a bad value falls back to its default); writing leaves defaults out, so URLs stay short.
 */
import { VIEWS, type ViewName } from '../views/mount.js';

/** The analysis tabs beside the views (tools.ts). */
export const TOOLS = ['compare', 'heads', 'steps'] as const;
export type ToolName = (typeof TOOLS)[number];
export const isTool = (view: string): view is ToolName => (TOOLS as readonly string[]).includes(view);

/** The page's theme: 'auto' follows the system (prefers-color-scheme). One for the whole page and all views. */
export const THEMES = ['auto', 'light', 'dark'] as const;
export type AppTheme = (typeof THEMES)[number];

export interface PinnedToken {
  side: 'left' | 'right';
  index: number;
}

export interface AppState {
  model: string;
  /** The name of the attention file shown instead of a model run (opened in the page); null = a model run. */
  file: string | null;
  text: string;
  pair: string;
  target: string;
  /** Cut inputs longer than the model's positions instead of refusing them. */
  truncate: boolean;
  /** A view, or one of the analysis tabs (tools.ts). */
  view: ViewName | ToolName;
  layer: number;
  /** Active heads; null = all. In the neuron view the first one is the head shown. */
  heads: number[] | null;
  /** Pinned tokens (head view: left = query side, right = key side; neuron view: the first one's index). */
  pinned: PinnedToken[];
  /** Neuron view: the first pinned token's q·k computation is expanded. */
  expanded: boolean;
  theme: AppTheme;
  /** The Compare tab's inputs besides text A (`text`): empty when unused. */
  compare: CompareInputs;
}

export interface CompareInputs {
  textB: string;
  /** Model B's id; '' = the page's model. */
  modelB: string;
  from: string;
  to: string;
}

const COMPARE_FIELDS = ['textB', 'modelB', 'from', 'to'] as const;

export const DEFAULT_TEXT = 'The cat sat on the mat because it was tired.';

export function defaultState(model: string): AppState {
  return {
    model,
    file: null,
    text: DEFAULT_TEXT,
    pair: '',
    target: '',
    truncate: false,
    view: 'head',
    layer: 0,
    heads: null,
    pinned: [],
    expanded: false,
    theme: 'auto',
    compare: { textB: '', modelB: '', from: '', to: '' },
  };
}

const integers = (s: string | null): number[] | null => {
  if (!s) return null;
  const list = s.split(',').map(Number);
  return list.length && list.every((n) => Number.isInteger(n) && n >= 0) ? list : null;
};

export function parseState(search: string, fallbackModel: string): AppState {
  const q = new URLSearchParams(search);
  const s = defaultState(q.get('model') || fallbackModel);
  s.file = q.get('file') || null;
  if (q.has('text')) s.text = q.get('text')!;
  s.pair = q.get('pair') ?? '';
  s.target = q.get('target') ?? '';
  s.truncate = q.get('truncate') === '1';
  const view = q.get('view');
  if (view && ([...VIEWS, ...TOOLS] as readonly string[]).includes(view)) s.view = view as ViewName | ToolName;
  const layer = Number(q.get('layer'));
  if (Number.isInteger(layer) && layer >= 0) s.layer = layer;
  s.heads = integers(q.get('heads'));
  s.expanded = q.get('expanded') === '1';
  const theme = q.get('theme');
  if (theme && (THEMES as readonly string[]).includes(theme)) s.theme = theme as AppTheme;
  for (const f of COMPARE_FIELDS) s.compare[f] = q.get(f) ?? '';
  s.pinned = (q.get('pinned') ?? '').split(',').flatMap((p): PinnedToken[] => {
    const m = /^([lr])(\d+)$/.exec(p);
    return m ? [{ side: m[1] === 'l' ? 'left' : 'right', index: Number(m[2]) }] : [];
  });
  return s;
}

export function stateQuery(s: AppState, defaultModel: string): string {
  const q = new URLSearchParams();
  // A file's texts are in the file, which a URL cannot carry: its name says what to open again.
  if (s.file !== null) q.set('file', s.file);
  else {
    if (s.model !== defaultModel) q.set('model', s.model);
    q.set('text', s.text);
    if (s.pair) q.set('pair', s.pair);
    if (s.target) q.set('target', s.target);
    if (s.truncate) q.set('truncate', '1');
  }
  if (s.view !== 'head') q.set('view', s.view);
  if (s.layer) q.set('layer', String(s.layer));
  if (s.heads) q.set('heads', s.heads.join(','));
  if (s.theme !== 'auto') q.set('theme', s.theme);
  if (s.pinned.length) q.set('pinned', s.pinned.map((p) => `${p.side[0]}${p.index}`).join(','));
  if (s.expanded && s.pinned.length) q.set('expanded', '1');
  for (const f of COMPARE_FIELDS) if (s.compare[f]) q.set(f, s.compare[f]);
  // Commas are safe in a query and keep lists readable: heads=0,3.
  return `?${q.toString().replace(/%2C/g, ',')}`;
}
