/**
 * The attnviz app: a model picker, the texts, the three views as tabs and the downloads, on the local
 * server's API (api.ts). The state lives in the URL (state.ts). Typing re-runs the model after a pause;
 * a newer request aborts an older one; a model load shows its progress; every failure is shown in the page.
 */
import type { Attention } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { download } from '../views/dom.js';
import { mountView, type ViewName } from '../views/mount.js';
import {
  ApiError,
  exportFile,
  fetchAttention,
  listModels,
  loadModel,
  type ModelInfo,
  type ModelList,
  type Progress,
} from './api.js';
import { acceptDrops, readAttentionBlob } from './file.js';
import { parseState, stateQuery, type AppState, type AppTheme, type PinnedToken } from './state.js';

const TYPING_PAUSE_MS = 300;
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
  text: $<HTMLTextAreaElement>('text'),
  pair: $<HTMLInputElement>('pair'),
  target: $<HTMLInputElement>('target'),
  targetField: $('target-field'),
  pairField: $('pair-field'),
  progress: $('progress'),
  progressBar: $<HTMLProgressElement>('progress-bar'),
  progressText: $('progress-text'),
  error: $('error'),
  status: $('status'),
  view: $('view'),
  tabs: [...document.querySelectorAll<HTMLButtonElement>('[role=tab]')],
};

let list: ModelList;
let state: AppState;
const loaded = new Map<string, ModelInfo>();
let data: Attention | null = null;
/** The attention file opened in the page, kept for its download. */
let opened: { name: string; file: Blob; attention: Attention } | null = null;
let mounted: MountedView | null = null;
let controller: AbortController | null = null;
let generation = 0;
let typingTimer: ReturnType<typeof setTimeout> | undefined;

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
  ui.dlHtml.disabled = file;
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
  if (data && mounted) render(data);
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
    e instanceof ApiError || e instanceof AttnvizError
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
    if (!state.text.trim()) {
      clearError();
      placeholder('Type a text to see its attention.');
      return;
    }
    ui.status.textContent = 'Running the model…';
    ui.view.classList.add('stale');
    const started = performance.now();
    const query = {
      model: state.model,
      text: state.text,
      pair: state.pair || null,
      target: info.encoderDecoder ? state.target || null : null,
    };
    const a = await fetchAttention(
      query,
      (partial, total) => {
        if (mine !== generation) return;
        render(partial);
        ui.status.textContent = `Receiving layers: ${partial.attention.dims[0]} of ${total}…`;
      },
      signal,
    );
    if (mine !== generation) return;
    clearError();
    data = a;
    render(a);
    const ms = Math.round(performance.now() - started);
    ui.status.textContent = `${modelName(state.model, info.modelType)} · ${shape(a)} · ${ms} ms`;
  } catch (e) {
    if ((e as Error).name === 'AbortError' || mine !== generation) return;
    showProgress(null);
    ui.status.textContent = '';
    showError(e);
  }
}

/** A model's name for the status line: the picker's label (or the id typed in), then its family. */
function modelName(id: string, modelType: string): string {
  const entry = list.models.find((m) => m.id === id);
  return `${entry?.label ?? id} (${modelType})`;
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
    ui.status.textContent = '';
    placeholder(
      `This link showed the attention file ${state.file}: open it again (Open attention file…, or drop it here).`,
    );
    return;
  }
  clearError();
  data = opened.attention;
  render(data);
  const { source, modelType } = data.model;
  const model = source ? `${source}${modelType ? ` (${modelType})` : ''}` : modelType || 'an unnamed model';
  ui.status.textContent = `${opened.name}: ${model} · ${shape(data)}`;
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
      return { layer, theme, head: heads?.[0] ?? 0, selected: pinned[0]?.index ?? null };
    case 'model':
      return { theme };
  }
}

function render(a: Attention): void {
  mounted?.destroy();
  ui.view.replaceChildren();
  ui.view.classList.remove('stale');
  try {
    mounted = mountView(ui.view, state.view, a, viewOptions(state.view, a));
  } catch (e) {
    mounted = null;
    showError(e);
    return;
  }
  const pinned = state.pinned.filter((p) => p.index < a.tokens.length);
  const handle = mounted as MountedView & { update?: (patch: Record<string, unknown>) => void };
  if (state.view === 'head' && pinned.length) handle.update?.({ pinned });
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
    state.layer = s.layer as number;
    const head = s.head as number;
    if (head !== (state.heads?.[0] ?? 0)) state.heads = [head];
    state.pinned = s.pinned && s.selected !== null ? [{ side: 'left', index: s.selected as number }] : [];
  } else {
    const selected = s.selected as { layer: number; head: number } | null;
    if (selected) state.layer = selected.layer;
  }
  writeUrl();
}

// ---- downloads --------------------------------------------------------------------------------------

async function downloadExport(format: 'html' | 'attention'): Promise<void> {
  if (!data) return;
  if (state.file !== null) {
    if (opened && format === 'attention') download(opened.file, opened.name);
    return;
  }
  try {
    const query = {
      model: state.model,
      text: state.text,
      pair: state.pair || null,
      target: loaded.get(state.model)?.encoderDecoder ? state.target || null : null,
    };
    const blob = await exportFile(query, format, state.view, viewOptions(state.view, data));
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
  for (const input of [ui.text, ui.pair, ui.target]) input.addEventListener('input', onText);
  for (const tab of ui.tabs) {
    tab.addEventListener('click', () => {
      state.view = tab.dataset.view as ViewName;
      showInputs();
      writeUrl();
      if (data) render(data);
    });
  }
  // The views keep their own state; any interaction inside one may have changed what the URL records.
  for (const type of ['click', 'dblclick', 'change', 'input', 'keyup']) {
    ui.view.addEventListener(type, () => setTimeout(readViewState, 0));
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
  for (const input of [ui.text, ui.pair, ui.target]) input.maxLength = list.limits.maxTextChars;
  state = parseState(location.search, list.defaultModel);
  showInputs();
  wire();
  await refresh();
}

void boot();
