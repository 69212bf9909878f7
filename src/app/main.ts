/**
 * The attnviz app: a model picker, the texts, the three views as tabs and the downloads, on the local
 * server's API (api.ts). The state lives in the URL (state.ts). Typing re-runs the model after a pause;
 * a newer request aborts an older one; a model load shows its progress; every failure is shown in the page.
 */
import type { Attention } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { download } from '../views/dom.js';
import { modelView, type ModelView } from '../views/model-view.js';
import { mountView, type ViewName } from '../views/mount.js';
import {
  ApiError,
  type AttentionQuery,
  countTokens,
  exportFile,
  fetchAttention,
  fetchHeads,
  listModels,
  loadModel,
  type ModelInfo,
  type ModelList,
  type Overview,
  type Progress,
} from './api.js';
import { acceptDrops, readAttentionBlob } from './file.js';
import { isTool, parseState, stateQuery, type AppState, type AppTheme, type PinnedToken } from './state.js';
import { toolPanels } from './tools.js';

const TYPING_PAUSE_MS = 300;
/** The truncate toggle's label, as error messages name it. */
const TRUNCATE_LABEL = "Truncate to the model's limit";
/** The model picker's entry for an opened attention file (no model id looks like this). */
const FILE_OPTION = ':file';

type MountedView = ReturnType<typeof mountView>;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $<HTMLSelectElement>('model'),
  hubForm: $<HTMLFormElement>('hub-form'),
  hubId: $<HTMLInputElement>('hub-id'),
  theme: $<HTMLSelectElement>('theme'),
  openFile: $<HTMLButtonElement>('open-file'),
  fileInput: $<HTMLInputElement>('file-input'),
  drop: $('drop'),
  dlHtml: $<HTMLButtonElement>('dl-html'),
  dlAttention: $<HTMLButtonElement>('dl-attention'),
  text: $<HTMLTextAreaElement>('text'),
  pair: $<HTMLInputElement>('pair'),
  target: $<HTMLInputElement>('target'),
  targetField: $('target-field'),
  counter: $('counter'),
  truncate: $<HTMLInputElement>('truncate'),
  truncateField: $('truncate-field'),
  pairField: $('pair-field'),
  progress: $('progress'),
  progressBar: $<HTMLProgressElement>('progress-bar'),
  progressText: $('progress-text'),
  error: $('error'),
  status: $('status'),
  view: $('view'),
  tabs: [...document.querySelectorAll<HTMLButtonElement>('[role=tab]')],
  texts: $('texts'),
  downloads: $('downloads'),
  tools: $('tools'),
};

let list: ModelList;
let state: AppState;
const loaded = new Map<string, ModelInfo>();
let data: Attention | null = null;
/**
 * A long input's pooled overview, shown instead of `data` (views draw it with addLayer and fetch heads at full
 * resolution through loadHead), and the query it answers.
 */
let overview: { o: Overview; query: AttentionQuery } | null = null;
/**
 * The attention file opened in the page, kept for its download; or a text generated in the Generate tab
 * (no file: `attnviz generate --out` writes one).
 */
let opened: { name: string; file: Blob | null; attention: Attention } | null = null;
let mounted: MountedView | null = null;
let controller: AbortController | null = null;
let generation = 0;
let typingTimer: ReturnType<typeof setTimeout> | undefined;
let counting: AbortController | null = null;

// ---- state ⇄ URL and inputs ---------------------------------------------------------------------------

function writeUrl(): void {
  history.replaceState(null, '', stateQuery(state, list.defaultModel) + location.hash);
}

function showInputs(): void {
  const file = state.file !== null;
  const value = file ? FILE_OPTION : state.model;
  const label = file ? `Attention file: ${state.file}` : state.model;
  const option = [...ui.model.options].find((o) => o.value === value);
  if (!option) addModelOption(value, label);
  else if (file) option.text = label;
  ui.model.value = value;
  // A file's texts are the file's: shown, not edited.
  const texts = file && opened ? { text: opened.attention.text, pair: opened.attention.pair ?? '' } : state;
  ui.text.value = texts.text;
  ui.pair.value = texts.pair;
  ui.target.value = file ? (opened?.attention.encoderDecoder?.target ?? '') : state.target;
  for (const input of [ui.text, ui.pair, ui.target]) input.readOnly = file;
  ui.truncate.checked = state.truncate;
  ui.truncateField.hidden = file;
  ui.counter.hidden = file;
  ui.dlHtml.disabled = file;
  ui.dlAttention.disabled = file && !opened?.file;
  ui.dlHtml.title = file ? 'The HTML page is made by the server from a model run; PNG and SVG work for files' : '';
  ui.theme.value = state.theme;
  for (const tab of ui.tabs) tab.setAttribute('aria-selected', String(tab.dataset.view === state.view));
}

function addModelOption(id: string, label: string): void {
  ui.model.append(new Option(label, id));
}

// ---- theme ------------------------------------------------------------------------------------------

const darkScheme = matchMedia('(prefers-color-scheme: dark)');

/** The theme in force: the chosen one, or the system's for 'auto'. */
function resolvedTheme(): 'light' | 'dark' {
  if (state.theme !== 'auto') return state.theme;
  return darkScheme.matches ? 'dark' : 'light';
}

/** Puts the theme on the page (app.css reads data-theme) and redraws the view in it. */
function applyTheme(): void {
  document.documentElement.dataset.theme = resolvedTheme();
  if (mounted) render();
}

function setTheme(theme: AppTheme): void {
  state.theme = theme;
  ui.theme.value = theme;
  writeUrl();
  applyTheme();
}

// ---- messages ----------------------------------------------------------------------------------------

function showError(e: unknown): void {
  const message =
    e instanceof ApiError && e.body?.code === 'too-many-tokens'
      ? `The ${e.body.field === 'target' ? 'target text' : 'text'} is ${e.body.tokens} tokens; this model takes at ` +
        `most ${e.body.maxTokens}. Tick “${TRUNCATE_LABEL}” to cut it to that, or shorten it.`
      : e instanceof ApiError || e instanceof AttnvizError
        ? e.message
        : `Something went wrong: ${(e as Error).message ?? String(e)}`;
  ui.error.textContent = message;
  ui.error.hidden = false;
  if (!mounted) placeholder(`No view: ${message}`);
  ui.view.classList.toggle('stale', mounted !== null);
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function placeholder(text: string): void {
  mounted?.destroy();
  mounted = null;
  ui.view.replaceChildren(Object.assign(document.createElement('p'), { className: 'placeholder', textContent: text }));
}

function showProgress(p: Progress | null): void {
  ui.progress.hidden = p === null;
  if (!p) return;
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  if (p.total && p.loaded !== undefined) {
    ui.progressBar.max = p.total;
    ui.progressBar.value = p.loaded;
    ui.progressText.textContent = `${p.message}: ${mb(p.loaded)} / ${mb(p.total)}`;
  } else {
    ui.progressBar.removeAttribute('value');
    ui.progressText.textContent = `${p.message}…`;
  }
}

// ---- running ----------------------------------------------------------------------------------------

/** Loads the model if this page has not yet, then fetches and shows the attention for the current texts. */
async function refresh(): Promise<void> {
  const mine = ++generation;
  controller?.abort();
  controller = new AbortController();
  const { signal } = controller;
  writeUrl();
  // An analysis tab follows the page's model (the Generate button: enabled for decoders only).
  if (isTool(state.view)) tools?.show(state.view);
  if (state.file !== null) {
    showOpened();
    return;
  }
  try {
    let info = loaded.get(state.model);
    if (!info) {
      showProgress({ phase: 'load', message: 'loading the model' });
      info = await loadModel(
        state.model,
        (p) => {
          if (mine === generation) showProgress(p);
        },
        signal,
      );
      loaded.set(state.model, info);
    }
    if (mine !== generation) return;
    showProgress(null);
    ui.targetField.hidden = !info.encoderDecoder;
    const missing = !state.text.trim()
      ? 'Type a text to see its attention.'
      : info.encoderDecoder && !state.target.trim()
        ? 'Type a target text (what the decoder reads) to see its attention.'
        : null;
    if (missing) {
      clearError();
      void updateCount(info);
      placeholder(missing);
      ui.status.textContent = '';
      return;
    }
    void updateCount(info);
    ui.status.textContent = 'Running the model…';
    ui.view.classList.add('stale');
    const started = performance.now();
    const query = currentQuery(info);
    const receiving = (n: number, total: number) => `Receiving layers: ${n} of ${total}…`;
    const a = await fetchAttention(
      query,
      {
        partial: (partial, total) => {
          if (mine !== generation) return;
          show(partial, null);
          ui.status.textContent = receiving(partial.attention.dims[0], total);
        },
        overview: (o, total) => {
          if (mine !== generation) return;
          // The first layer mounts the view; the later ones are painted into it as they come.
          if (o.layers.length === 1 || overview?.o !== o) show(null, { o, query });
          else progressive?.addLayer(o.layers.length - 1, ...layerOf(o, o.layers.length - 1));
          ui.status.textContent = receiving(o.layers.length, total);
        },
      },
      signal,
    );
    if (mine !== generation) return;
    clearError();
    const pooled = 'shell' in a;
    if (!pooled) show(a, null);
    const ms = Math.round(performance.now() - started);
    const what = pooled
      ? `${shape(a.shell)} · overview: each head max-pooled to ` +
        `${a.layers[0].size.join(' × ')}, heads at full resolution as you open ` +
        'them'
      : shape(a);
    ui.status.textContent = `${modelName(state.model, info.modelType)} · ${what} · ${ms} ms`;
  } catch (e) {
    if ((e as Error).name === 'AbortError' || mine !== generation) return;
    showProgress(null);
    ui.status.textContent = '';
    showError(e);
  }
}

/** The request for the current state. */
function currentQuery(info: ModelInfo): AttentionQuery {
  return {
    model: state.model,
    text: state.text,
    pair: state.pair || null,
    target: info.encoderDecoder ? state.target || null : null,
    truncate: state.truncate,
  };
}

const layerOf = (o: Overview, l: number): [Float32Array, [number, number]] => [o.layers[l].weights, o.layers[l].size];

/**
 * The token counter: the text's (and pair's) tokens against the model's positions, and its characters against
 * the server's limit, as the user types. Over either limit it says what happens.
 */
async function updateCount(info: ModelInfo): Promise<void> {
  counting?.abort();
  counting = new AbortController();
  const maxChars = list.limits.maxTextChars;
  const chars = Math.max(state.text.length, state.pair.length);
  const charText = `${chars.toLocaleString('en')} of ${maxChars.toLocaleString('en')} characters (this server's limit)`;
  if (chars > maxChars) {
    ui.counter.textContent = `${charText}: too long for this server`;
    ui.counter.classList.add('over');
    return;
  }
  try {
    const { tokens, maxTokens } = await countTokens(currentQuery(info), counting.signal);
    const over = tokens > maxTokens;
    ui.counter.classList.toggle('over', over && !state.truncate);
    ui.counter.textContent =
      `${tokens.toLocaleString('en')} of ${maxTokens.toLocaleString('en')} tokens` +
      (over ? (state.truncate ? ` (cut to ${maxTokens})` : ": over the model's limit") : '') +
      ` · ${charText}`;
  } catch (e) {
    if ((e as Error).name !== 'AbortError') ui.counter.textContent = '';
  }
}

/** A model's name for the status line: the picker's label (or the id typed in) · its family. */
function modelName(id: string, modelType: string): string {
  const entry = list.models.find((m) => m.id === id);
  return `${entry?.label ?? id.replace(/^(path|hub):/, '')} · ${modelType}`;
}

const shape = (a: Attention) => {
  const [L, H, T] = a.attention.dims;
  return `${T} tokens · ${L} layers × ${H} heads`;
};

/** Shows the opened attention file, or says which file the URL named when this page has none open. */
function showOpened(): void {
  showProgress(null);
  ui.targetField.hidden = !opened?.attention.encoderDecoder;
  if (!opened || opened.name !== state.file) {
    data = null;
    overview = null;
    ui.status.textContent = '';
    placeholder(
      `This link showed the attention file ${state.file}: open it again (Open attention file…, or drop it here).`,
    );
    return;
  }
  clearError();
  show(opened.attention, null);
  const { source, modelType } = opened.attention.model;
  const model = [source, modelType].filter(Boolean).join(' · ') || 'an unnamed model';
  ui.status.textContent = `${opened.name}: ${model} · ${shape(opened.attention)}`;
}

/** Reads `file` in the page and shows it (the view, layer and heads of the URL apply when it fits). */
async function openFile(file: File): Promise<void> {
  try {
    const attention = await readAttentionBlob(file, file.name);
    opened = { name: file.name, file, attention };
  } catch (e) {
    showError(e);
    return;
  }
  const fresh = state.file !== file.name;
  state = { ...state, file: file.name, ...(fresh ? { layer: 0, heads: null, pinned: [] } : {}) };
  showInputs();
  void refresh();
}

function scheduleRefresh(): void {
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => void refresh(), TYPING_PAUSE_MS);
}

// ---- views ------------------------------------------------------------------------------------------

/** The options that open view `name` in the app's state (clamped to the data). */
function viewOptions(name: ViewName, a: Attention): Record<string, unknown> {
  const [L, H, T] = a.attention.dims;
  const layer = Math.min(state.layer, L - 1);
  const heads = state.heads?.filter((h) => h < H);
  const pinned = state.pinned.filter((p) => p.index < T);
  const theme = resolvedTheme();
  switch (name) {
    case 'head':
      return { layer, theme, ...(heads?.length ? { heads } : {}) };
    case 'neuron':
      return {
        layer,
        theme,
        head: heads?.[0] ?? 0,
        selected: pinned[0]?.index ?? null,
        expanded: state.expanded && pinned.length > 0,
      };
    case 'model':
      return { theme };
  }
}

/** Shows a whole result, or an overview (one of them: the other null). */
function show(a: Attention | null, o: typeof overview): void {
  data = a;
  overview = o;
  render();
}

/** The model view being painted from an overview, layer by layer. */
let progressive: ModelView | null = null;

/** Draws the current view of the data shown (whole, or the overview with heads loaded on demand). */
function render(): void {
  const a = data ?? overview?.o.shell;
  const view = state.view;
  if (!a || isTool(view)) return;
  mounted?.destroy();
  progressive = null;
  ui.view.replaceChildren();
  ui.view.classList.remove('stale');
  try {
    if (overview) mounted = mountOverview(view, overview.o, overview.query);
    else mounted = mountView(ui.view, view, a, viewOptions(view, a));
  } catch (e) {
    mounted = null;
    showError(e);
    return;
  }
  if (!mounted) return;
  const pinned = state.pinned.filter((p) => p.index < a.tokens.length);
  const handle = mounted as MountedView & { update?: (patch: Record<string, unknown>) => void };
  if (state.view === 'head' && pinned.length) handle.update?.({ pinned });
}

/**
 * An overview's view. The model view paints the pooled layers; its panel, and the head view, fetch the heads
 * they show at full resolution. The neuron view needs one head's q and k: that head alone is fetched and
 * shown (null until it arrives).
 */
function mountOverview(view: ViewName, o: Overview, query: AttentionQuery): MountedView | null {
  const loadHead = async (layer: number, head: number) =>
    (await fetchHeads(query, layer, [head], false)).attention.data;
  const options = { ...viewOptions(view, o.shell), loadHead };
  if (view === 'model') {
    const view = modelView(ui.view, o.shell, options);
    o.layers.forEach((_, l) => view.addLayer(l, ...layerOf(o, l)));
    progressive = view;
    return view;
  }
  if (view === 'head') return mountView(ui.view, 'head', o.shell, options);
  const { layer, head } = { layer: Math.min(state.layer, o.shell.attention.dims[0] - 1), head: state.heads?.[0] ?? 0 };
  const mine = generation;
  ui.view.append(Object.assign(document.createElement('p'), { className: 'placeholder', textContent: 'Loading…' }));
  void fetchHeads(query, layer, [head], true).then(
    (one) => {
      if (mine !== generation || state.view !== 'neuron' || overview?.o !== o) return;
      const note = Object.assign(document.createElement('p'), {
        className: 'note',
        textContent:
          `Layer ${layer}, head ${head} at full resolution: a long input's heads come one at a time ` +
          '(choose another in the model view).',
      });
      ui.view.replaceChildren(note);
      mounted = mountView(ui.view, 'neuron', one, { ...viewOptions('neuron', one), layer: 0, head: 0 });
    },
    (e: unknown) => showError(e),
  );
  return null;
}

/** Reads layer, heads and pins back from the view after the user changed them there. */
function readViewState(): void {
  const handle = mounted as (MountedView & { state?: () => Record<string, unknown> }) | null;
  const s = handle?.state?.();
  if (!s) return;
  if (state.view === 'head') {
    const active = s.active as boolean[];
    state.layer = s.layer as number;
    state.heads = active.every(Boolean) ? null : active.flatMap((on, h) => (on ? [h] : []));
    state.pinned = (s.pinned as PinnedToken[]).map(({ side, index }) => ({ side, index }));
  } else if (state.view === 'neuron') {
    // The neuron view has a theme control of its own: a change there is the page's theme too.
    if (s.theme !== resolvedTheme()) {
      setTheme(s.theme as AppTheme);
      return;
    }
    // Over an overview the neuron view holds one head: its layer and head are not the model's indices.
    if (!overview) {
      state.layer = s.layer as number;
      const head = s.head as number;
      if (head !== (state.heads?.[0] ?? 0)) state.heads = [head];
    }
    state.pinned = s.pinned && s.selected !== null ? [{ side: 'left', index: s.selected as number }] : [];
    state.expanded = s.expanded === true && state.pinned.length > 0;
  } else {
    const selected = s.selected as { layer: number; head: number } | null;
    if (selected) {
      state.layer = selected.layer;
      if (overview) state.heads = [selected.head];
    }
  }
  writeUrl();
}

// ---- analysis tabs ----------------------------------------------------------------------------------

/** The loaded model's description, loading it first (with the progress bar) when this page has not yet. */
async function modelInfo(): Promise<ModelInfo> {
  const id = state.model;
  const known = loaded.get(id);
  if (known) return known;
  showProgress({ phase: 'load', message: 'loading the model' });
  try {
    const info = await loadModel(id, (p) => showProgress(p));
    loaded.set(id, info);
    return info;
  } finally {
    showProgress(null);
  }
}

let tools: ReturnType<typeof toolPanels> | null = null;

/** Shows the chosen tab: a view (the texts, the view and its downloads), or an analysis tab's panel. */
function showTab(): void {
  const tool = isTool(state.view) ? state.view : null;
  for (const part of [ui.texts, ui.downloads, ui.view, ui.status]) part.hidden = tool !== null;
  tools ??= toolPanels(ui.tools, {
    model: () => state.model,
    info: modelInfo,
    models: () => list.models,
    text: () => state.text,
    compareInputs: () => state.compare,
    setCompare: (text, compare) => {
      state = { ...state, text, compare };
      writeUrl();
    },
    showError,
    clearError,
    openInViews: (attention, name) => {
      opened = { name, file: null, attention };
      state = { ...state, file: name, view: 'head', layer: 0, heads: null, pinned: [] };
      showInputs();
      showTab();
      void refresh();
    },
  });
  tools.show(tool);
  if (!tool) render();
}

// ---- downloads --------------------------------------------------------------------------------------

async function downloadExport(format: 'html' | 'attention'): Promise<void> {
  const shown = data ?? overview?.o.shell;
  const view = state.view;
  if (!shown || isTool(view)) return;
  if (state.file !== null) {
    if (opened?.file && format === 'attention') download(opened.file, opened.name);
    return;
  }
  try {
    const info = loaded.get(state.model);
    if (!info) return;
    const blob = await exportFile(currentQuery(info), format, view, viewOptions(view, shown));
    download(blob, format === 'html' ? `attnviz-${state.view}-view.html` : 'attention.safetensors');
  } catch (e) {
    showError(e);
  }
}

// ---- wiring -----------------------------------------------------------------------------------------

function wire(): void {
  ui.model.addEventListener('change', () => {
    if (ui.model.value === FILE_OPTION) {
      if (opened) state = { ...state, file: opened.name };
    } else state = { ...state, model: ui.model.value, file: null, layer: 0, heads: null, pinned: [] };
    showInputs();
    void refresh();
  });
  ui.openFile.addEventListener('click', () => ui.fileInput.click());
  ui.fileInput.addEventListener('change', () => {
    const file = ui.fileInput.files?.[0];
    ui.fileInput.value = '';
    if (file) void openFile(file);
  });
  acceptDrops(ui.drop, (file) => void openFile(file));
  ui.theme.addEventListener('change', () => setTheme(ui.theme.value as AppTheme));
  darkScheme.addEventListener('change', () => {
    if (state.theme === 'auto') applyTheme();
  });
  ui.hubForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = ui.hubId.value.trim();
    if (!id) return;
    if (![...ui.model.options].some((o) => o.value === id)) addModelOption(id, `${id} (Hugging Face)`);
    state = { ...state, model: id, file: null, layer: 0, heads: null, pinned: [] };
    showInputs();
    void refresh();
  });
  const onText = () => {
    state = { ...state, text: ui.text.value, pair: ui.pair.value, target: ui.target.value, pinned: [] };
    writeUrl();
    scheduleRefresh();
  };
  ui.truncate.addEventListener('change', () => {
    state = { ...state, truncate: ui.truncate.checked };
    void refresh();
  });
  for (const input of [ui.text, ui.pair, ui.target]) input.addEventListener('input', onText);
  for (const tab of ui.tabs) {
    tab.addEventListener('click', () => {
      state.view = tab.dataset.view as AppState['view'];
      showInputs();
      writeUrl();
      showTab();
    });
  }
  // The views keep their own state; any interaction inside one may have changed what the URL records. Caught
  // on the way down, since a view may stop an event from bubbling (the neuron view's expand button does).
  for (const type of ['click', 'dblclick', 'change', 'input', 'keyup']) {
    ui.view.addEventListener(type, () => setTimeout(readViewState, 0), { capture: true });
  }
  $('dl-html').addEventListener('click', () => void downloadExport('html'));
  $('dl-attention').addEventListener('click', () => void downloadExport('attention'));
  $('dl-png').addEventListener('click', async () => {
    if (mounted) download(await mounted.toPNG(), `attnviz-${state.view}-view.png`);
  });
  $('dl-svg').addEventListener('click', () => {
    if (mounted) download(new Blob([mounted.toSVG()], { type: 'image/svg+xml' }), `attnviz-${state.view}-view.svg`);
  });
}

async function boot(): Promise<void> {
  // The theme first, so the page never flashes in the wrong one while the model list loads.
  state = parseState(location.search, '');
  document.documentElement.dataset.theme = resolvedTheme();
  try {
    list = await listModels();
  } catch (e) {
    showError(e);
    return;
  }
  for (const m of list.models) addModelOption(m.id, m.label);
  state = parseState(location.search, list.defaultModel);
  showInputs();
  wire();
  showTab();
  await refresh();
}

void boot();
