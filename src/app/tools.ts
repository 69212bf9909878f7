/**
 * The app's analysis tabs — Compare, Heads (the head finder) and Steps (generation) — on the server's tool
 * endpoints (api.ts). Each tab is a form over the page's model; its answer is the report the CLI writes,
 * drawn by the same report pages (views/reports/), so the grids, tables, linked head views and step slider are
 * written once. Panels are built on first use and kept, so a result survives switching tabs.
 */
import type { Attention } from '../core/attention.js';
import { prettifyToken } from '../core/tokens.js';
import { el } from '../views/dom.js';
import { comparePage } from '../views/reports/compare-page.js';
import { headsPage } from '../views/reports/heads-page.js';
import { stepsPage } from '../views/reports/steps-page.js';
import { REPORT_CSS } from '../views/reports/widgets.js';
import type { CompareInputs, ToolName } from './state.js';
import { compare, findHeads, generate, type ModelEntry, type ModelInfo, type Report } from './api.js';

/** What the tabs need from the page. */
export interface ToolHost {
  /** The model picked in the page (a model id). */
  model(): string;
  /** The picked model's description, loading it (with the page's progress bar) when needed. */
  info(): Promise<ModelInfo>;
  models(): readonly ModelEntry[];
  /** The page's main text (the first input of Compare, the prompt of Steps, until edited). */
  text(): string;
  /** The Compare tab's inputs in the URL, read when the tab opens and written when it runs. */
  compareInputs(): CompareInputs;
  setCompare(text: string, inputs: CompareInputs): void;
  showError(e: unknown): void;
  clearError(): void;
  /** Shows a generated text's attention in the head, model and neuron views. */
  openInViews(a: Attention, name: string): void;
}

interface Panel {
  element: HTMLElement;
  /** Called when the tab is shown and when the page's model changes. */
  refresh(): void;
}

/** The three tab panels in `host` (one shown at a time). */
export function toolPanels(container: HTMLElement, host: ToolHost): { show(name: ToolName | null): void } {
  container.append(el('style', { text: REPORT_CSS }));
  const panels = new Map<ToolName, Panel>();
  const make = { compare: comparePanel, heads: headsPanel, steps: stepsPanel };
  return {
    show(name) {
      container.hidden = name === null;
      for (const [n, p] of panels) p.element.hidden = n !== name;
      if (name === null) return;
      let panel = panels.get(name);
      if (!panel) {
        panel = make[name](host);
        panels.set(name, panel);
        container.append(panel.element);
      }
      panel.refresh();
    },
  };
}

// ---- shared parts ---------------------------------------------------------------------------------------

const field = (label: string, input: HTMLElement, hint = '') =>
  el('label', { class: 'field' }, label, ...(hint ? [el('span', { class: 'hint', text: hint })] : []), input);

/** A form's run: one at a time per panel (a new run aborts the last), errors shown in the page. */
function runner(host: ToolHost, button: HTMLButtonElement, result: HTMLElement) {
  let controller: AbortController | null = null;
  return async (work: (signal: AbortSignal) => Promise<void>) => {
    controller?.abort();
    controller = new AbortController();
    const mine = controller;
    host.clearError();
    button.disabled = true;
    result.classList.add('stale');
    try {
      await work(mine.signal);
    } catch (e) {
      if ((e as Error).name !== 'AbortError') {
        host.showError(e);
        result.replaceChildren(
          el('p', { class: 'placeholder tool-failed', text: 'No report: see the message above.' }),
        );
      }
    } finally {
      if (controller === mine) {
        button.disabled = false;
        result.classList.remove('stale');
      }
    }
  };
}

/** Draws a report page into `result` (a fresh root, as the standalone report has). */
function drawReport(result: HTMLElement, draw: (root: HTMLElement) => void): void {
  const root = el('div', { class: 'attnviz-report' });
  result.replaceChildren(root);
  draw(root);
  root.dataset.ready = 'true';
}

// ---- Compare ----------------------------------------------------------------------------------------------

function comparePanel(host: ToolHost): Panel {
  const textA = el('textarea', { rows: 2, spellcheck: 'false', 'aria-label': 'text A' });
  const textB = el('textarea', { rows: 2, spellcheck: 'false', 'aria-label': 'text B' });
  const modelB = el('select', { 'aria-label': 'model B' });
  const from = el('input', { spellcheck: 'false', 'aria-label': 'from tokens', placeholder: 'e.g. /\\b(she|he)\\b/i' });
  const to = el('input', { spellcheck: 'false', 'aria-label': 'to tokens', placeholder: 'e.g. /^lily/i' });
  const truncate = el('input', { type: 'checkbox', 'aria-label': 'truncate' });
  const go = el('button', { type: 'submit', class: 'primary', text: 'Compare' });
  const result = el('div', { class: 'tool-result' });
  const form = el(
    'form',
    { class: 'tool-form' },
    field('Text A', textA),
    field('Text B', textB, ' (empty: text A, on model B)'),
    field('Model B', modelB, ' (one that shares the tokenizer)'),
    field('Attention from tokens X', from, ' (a word, /regex/flags or #i,j)'),
    field('to tokens Y', to),
    el('label', { class: 'check' }, truncate, " Truncate to the model's limit"),
    go,
  );
  const run = runner(host, go, result);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    host.setCompare(textA.value, { textB: textB.value, modelB: modelB.value, from: from.value, to: to.value });
    void run(async (signal) => {
      await host.info();
      const r = await compare(
        {
          model: host.model(),
          ...(modelB.value ? { modelB: modelB.value } : {}),
          text: textA.value,
          textB: textB.value,
          ...(from.value.trim() || to.value.trim() ? { from: from.value, to: to.value } : {}),
          truncate: truncate.checked,
        },
        signal,
      );
      const report = r.report;
      if (report.kind === 'compare') drawReport(result, (root) => comparePage(root, report, r.data));
    });
  });
  const fillModels = () => {
    const chosen = modelB.value;
    modelB.replaceChildren(
      el('option', { value: '', text: 'the same model' }),
      ...host.models().map((m) => el('option', { value: m.id, text: m.label })),
    );
    modelB.value = chosen;
  };
  // A shared URL's comparison is filled in and run.
  const inputs = host.compareInputs();
  textA.value = host.text();
  fillModels();
  textB.value = inputs.textB;
  from.value = inputs.from;
  to.value = inputs.to;
  modelB.value = inputs.modelB;
  if (inputs.textB || inputs.modelB) queueMicrotask(() => form.requestSubmit());
  return { element: el('section', { class: 'tool', 'data-tool': 'compare' }, form, result), refresh: fillModels };
}

// ---- Heads ------------------------------------------------------------------------------------------------

function headsPanel(host: ToolHost): Panel {
  const corpus = el('textarea', {
    rows: 6,
    spellcheck: 'false',
    'aria-label': 'corpus',
    placeholder: 'One text per line (with “sentence pairs”: a tab between the two texts)',
  });
  const file = el('input', { type: 'file', accept: '.txt,text/plain', 'aria-label': 'corpus file', hidden: true });
  const openFile = el('button', { type: 'button', text: 'Open a corpus file…' });
  openFile.addEventListener('click', () => file.click());
  file.addEventListener('change', async () => {
    const f = file.files?.[0];
    file.value = '';
    if (f) corpus.value = await f.text();
  });
  const pair = el('input', { type: 'checkbox', 'aria-label': 'sentence pairs' });
  const patterns = el('textarea', {
    rows: 2,
    spellcheck: 'false',
    'aria-label': 'patterns',
    placeholder: 'optional, one per line: /^(he|she)$/i -> /^[A-Z]/',
  });
  const truncate = el('input', { type: 'checkbox', 'aria-label': 'truncate' });
  const go = el('button', { type: 'submit', class: 'primary', text: 'Find heads' });
  const bar = el('progress', { class: 'tool-progress', 'aria-label': 'texts scored' });
  const barText = el('span', { class: 'tool-progress-text' });
  const progress = el('div', { class: 'progress', hidden: true }, bar, barText);
  const result = el('div', { class: 'tool-result' });
  const form = el(
    'form',
    { class: 'tool-form' },
    field('Corpus', corpus),
    openFile,
    file,
    el('label', { class: 'check' }, pair, ' Sentence pairs (tab-separated)'),
    field('Patterns', patterns, ' (from tokens matching /re/ to tokens matching /re/)'),
    el('label', { class: 'check' }, truncate, " Truncate to the model's limit (else long texts are skipped)"),
    go,
  );
  const run = runner(host, go, result);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void run(async (signal) => {
      await host.info();
      progress.hidden = false;
      bar.removeAttribute('value');
      barText.textContent = 'Scoring the corpus…';
      try {
        const r = await findHeads(
          {
            model: host.model(),
            corpus: corpus.value,
            pair: pair.checked,
            patterns: patterns.value.split('\n').filter((p) => p.trim()),
            truncate: truncate.checked,
          },
          (p) => {
            bar.max = p.total;
            bar.value = p.done;
            barText.textContent =
              `${p.done} of ${p.total} texts` + (p.skipped ? ` (${p.skipped} skipped: too long or refused)` : '');
          },
          signal,
        );
        const report = r.report;
        if (report.kind === 'heads') drawReport(result, (root) => headsPage(root, report, r.data));
      } finally {
        progress.hidden = true;
      }
    });
  });
  return { element: el('section', { class: 'tool', 'data-tool': 'heads' }, form, progress, result), refresh() {} };
}

const kind = (info: ModelInfo) =>
  info.encoderDecoder ? 'an encoder-decoder' : info.causal ? 'a decoder attnviz does not generate with' : 'an encoder';

// ---- Steps (generation) -----------------------------------------------------------------------------------

function stepsPanel(host: ToolHost): Panel {
  const prompt = el('textarea', { rows: 2, spellcheck: 'false', 'aria-label': 'prompt' });
  const number = (label: string, value: string, attrs: Record<string, string>) =>
    field(label, el('input', { type: 'number', value, 'aria-label': label.toLowerCase(), ...attrs }));
  const temperature = number('Temperature', '0.8', { min: '0', max: '100', step: '0.1' });
  const topP = number('Top-p', '0.9', { min: '0.01', max: '1', step: '0.01' });
  const seed = number('Seed', '', { min: '0', step: '1', placeholder: 'random' });
  const maxTokens = number('Max tokens', '40', { min: '1', max: '1024', step: '1' });
  const value = (f: HTMLElement) => f.querySelector('input')!.value;
  const go = el('button', { type: 'submit', class: 'primary', text: 'Generate' });
  const reason = el('p', { class: 'note tool-reason', hidden: true });
  const stream = el('p', { class: 'tool-stream', 'aria-live': 'polite' });
  const result = el('div', { class: 'tool-result' });
  const open = el('button', { type: 'button', text: 'Show in the head, model and neuron views', hidden: true });
  let last: { a: Attention; seed?: number } | null = null;
  open.addEventListener('click', () => {
    if (last) host.openInViews(last.a, `generated text (seed ${last.seed})`);
  });
  const form = el(
    'form',
    { class: 'tool-form' },
    field('Prompt', prompt),
    el('div', { class: 'tool-row' }, temperature, topP, seed, maxTokens),
    el('div', { class: 'tool-row' }, go, open),
  );
  const run = runner(host, go, result);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void run(async (signal) => {
      const info = await host.info();
      if (!info.generate) return;
      open.hidden = true;
      stream.replaceChildren(el('span', { class: 'tool-prompt', text: prompt.value }));
      const s = value(seed).trim();
      const r: Report = await generate(
        {
          model: host.model(),
          prompt: prompt.value,
          maxNewTokens: Number(value(maxTokens)),
          temperature: Number(value(temperature)),
          topP: Number(value(topP)),
          ...(s ? { seed: Number(s) } : {}),
        },
        (t) => stream.append(el('span', { class: 'tool-token', 'data-index': t.index, text: prettifyToken(t.token) })),
        signal,
      );
      const report = r.report;
      if (report.kind !== 'steps') return;
      last = { a: r.data.get('a')!, seed: r.seed };
      stream.append(el('span', { class: 'tool-seed', text: `  (seed ${r.seed})` }));
      open.hidden = false;
      drawReport(result, (root) => stepsPage(root, report, r.data));
    });
  });
  const panel = el('section', { class: 'tool', 'data-tool': 'steps' }, form, reason, stream, result);
  return {
    element: panel,
    refresh() {
      if (!prompt.value) prompt.value = host.text();
      // Until the model is known the button waits; an encoder keeps it disabled, saying why.
      go.disabled = true;
      void host.info().then(
        (info) => {
          go.disabled = !info.generate;
          reason.hidden = info.generate;
          reason.textContent = info.generate
            ? ''
            : `Generate needs a decoder with a language-model head: ${info.id.replace(/^(path|hub):/, '')} ` +
              `(${info.modelType}) is ${kind(info)}. ` +
              'Pick a decoder such as a Llama, Mistral or Qwen2 checkpoint or a GGUF file.';
          go.title = reason.textContent;
        },
        (e: unknown) => host.showError(e),
      );
    },
  };
}
