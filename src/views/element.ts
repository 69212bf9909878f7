/**
 * `<attnviz-view src="cat.safetensors" view="head" layer="2" theme="dark">`: a view for docs and blogs. The
 * element fetches its attention file (docs/attention-file.md) when it first comes near the viewport — pages
 * with many views load only what is read — decodes it in the page and mounts the view inside itself. No
 * globals: each element holds its own data and view; changing `src` fetches again, changing `view` or an
 * option (`layer`, `head`, `selected`, `theme`) remounts on the data it has. Registered by the standalone bundle and by
 * `defineAttnvizElement()`.
 */
import type { Attention } from '../core/attention.js';
import { decodeAttentionFile } from '../core/attention-file.js';
import type { MountedView } from './handle.js';
import { mountView, VIEWS, type ViewName } from './mount.js';

const NUMBER_OPTIONS = ['layer', 'head', 'selected'];
const OPTIONS = ['theme', ...NUMBER_OPTIONS];

export class AttnvizViewElement extends HTMLElement {
  static observedAttributes = ['src', 'view', ...OPTIONS];

  private view: MountedView | null = null;
  private data: Attention | null = null;
  private observer: IntersectionObserver | null = null;
  /** Bumped on every (re)load, so a slow fetch that finishes after a newer one is dropped. */
  private generation = 0;

  connectedCallback(): void {
    if (this.view || this.observer) return;
    // Lazy: fetch once the element is within a screen of the viewport.
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) {
          this.observer?.disconnect();
          this.observer = null;
          void this.load();
        }
      },
      { rootMargin: '100% 0px' },
    );
    this.observer.observe(this);
  }

  disconnectedCallback(): void {
    this.observer?.disconnect();
    this.observer = null;
  }

  attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if (old === value || !this.dataset.state) return;
    if (name === 'src' || !this.data) void this.load();
    else this.mount();
  }

  private options(): Record<string, unknown> {
    const options: Record<string, unknown> = {};
    for (const name of OPTIONS) {
      const value = this.getAttribute(name);
      if (value !== null) options[name] = NUMBER_OPTIONS.includes(name) ? Number(value) : value;
    }
    return options;
  }

  private viewName(): ViewName {
    const view = this.getAttribute('view') ?? 'head';
    const known = VIEWS.find((v) => v === view);
    if (!known) throw new Error(`view must be one of ${VIEWS.join(', ')}, not "${view}"`);
    return known;
  }

  private mount(): void {
    this.view?.destroy();
    this.replaceChildren();
    this.view = mountView(this, this.viewName(), this.data!, this.options());
    this.dataset.state = 'ready';
  }

  private async load(): Promise<void> {
    const generation = ++this.generation;
    const src = this.getAttribute('src');
    this.dataset.state = 'loading';
    try {
      if (!src) throw new Error('no src attribute (an attention file URL)');
      this.viewName();
      const response = await fetch(src);
      if (!response.ok) throw new Error(`${src}: HTTP ${response.status}`);
      const data = decodeAttentionFile(new Uint8Array(await response.arrayBuffer()), src);
      if (generation !== this.generation) return;
      this.data = data;
      this.mount();
    } catch (e) {
      if (generation !== this.generation) return;
      this.view = null;
      this.data = null;
      const message = document.createElement('div');
      message.className = 'attnviz-error';
      message.textContent = `attnviz: cannot show ${src ?? 'this view'} (${(e as Error).message})`;
      this.replaceChildren(message);
      this.dataset.state = 'error';
    }
  }
}

/** Registers `<attnviz-view>` (once; a second call, or another copy of attnviz on the page, is a no-op). */
export function defineAttnvizElement(name = 'attnviz-view'): void {
  if (!customElements.get(name)) customElements.define(name, class extends AttnvizViewElement {});
}
