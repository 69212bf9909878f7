/**
 * Entry point of the standalone bundle inlined into exported HTML. It finds each data block
 * `<script type="application/x-attnviz" data-view="head|model|neuron">` (base 85 text of the binary encoding in
 * core/encode.ts, data-bytes long, deflate-raw compressed when data-compression says so), decodes it and mounts the
 * view right after it. Nothing is fetched: the page works from file:// with the network off. A block with
 * `data-full` is a large model view's pooled overview, its full data in a later block (views/split-page.ts).
 *
 * It also registers the `<attnviz-view src=…>` element (views/element.ts). The bundle (an IIFE) also exposes the view
 * functions as `attnvizStandalone.{headView, modelView, mountView}`, so a page can mount views on data it builds itself
 * (layers streamed in, tests, benchmarks).
 */
import { decodePageData } from '../core/page-data.js';
import { aggregatesView } from './aggregates.js';
import { defineAttnvizElement } from './element.js';
import { mountView, type ViewName } from './mount.js';
import { mountSplitModelView } from './split-page.js';

export { headView } from './head-view.js';
export { modelView } from './model-view.js';
export { mountView } from './mount.js';
export { defineAttnvizElement } from './element.js';

async function boot(): Promise<void> {
  for (const script of document.querySelectorAll<HTMLScriptElement>('script[type="application/x-attnviz"]')) {
    const host = document.createElement('div');
    script.after(host);
    try {
      // User Timing marks let benchmarks split load time into decoding and drawing.
      performance.mark('attnviz:decode-start');
      const data = await decodePageData(script.textContent!, script.dataset);
      performance.measure('attnviz:decode', 'attnviz:decode-start');
      const options = JSON.parse(script.dataset.options ?? '{}') as Record<string, unknown>;
      performance.mark('attnviz:render-start');
      const view = script.dataset.view as ViewName;
      // `aggregates: true` (export --aggregate all): a select between the heads and the pseudo-layers.
      if (script.dataset.full) mountSplitModelView(host, data, options, script.dataset.full);
      else if (options.aggregates === true && view !== 'neuron') aggregatesView(host, view, data, options);
      else mountView(host, view, data, options);
      performance.measure('attnviz:render', 'attnviz:render-start');
    } catch (e) {
      host.textContent = `attnviz: cannot show this view (${(e as Error).message})`;
    }
  }
}

// <attnviz-view src=…> elements anywhere on the page (views/element.ts).
defineAttnvizElement();
void boot();
