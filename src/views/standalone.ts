/**
 * Entry point of the standalone bundle inlined into exported HTML. It finds each data block
 * `<script type="application/x-attnviz" data-view="head|model|neuron">` (base 85 text of the binary encoding in
 * core/encode.ts, data-bytes long, deflate-raw compressed when data-compression says so), decodes it and mounts the view
 * right after it. Nothing is fetched: the page works from file:// with the network off.
 *
 * The bundle (an IIFE) also exposes the view functions as `attnvizStandalone.{headView, modelView, mountView}`,
 * so a page can mount views on data it builds itself (layers streamed in, tests, benchmarks).
 */
import { decodeBase85 } from '../core/base85.js';
import { decodeAttention } from '../core/encode.js';
import { mountView, type ViewName } from './mount.js';

export { headView } from './head-view.js';
export { modelView } from './model-view.js';
export { mountView } from './mount.js';

async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function boot(): Promise<void> {
  for (const script of document.querySelectorAll<HTMLScriptElement>('script[type="application/x-attnviz"]')) {
    const host = document.createElement('div');
    script.after(host);
    try {
      // User Timing marks let benchmarks split load time into decoding and drawing.
      performance.mark('attnviz:decode-start');
      let bytes = decodeBase85(script.textContent!.trim(), Number(script.dataset.bytes));
      if (script.dataset.compression === 'deflate-raw') bytes = await inflate(bytes);
      const data = decodeAttention(bytes);
      performance.measure('attnviz:decode', 'attnviz:decode-start');
      const options = JSON.parse(script.dataset.options ?? '{}') as Record<string, unknown>;
      performance.mark('attnviz:render-start');
      mountView(host, script.dataset.view as ViewName, data, options);
      performance.measure('attnviz:render', 'attnviz:render-start');
    } catch (e) {
      host.textContent = `attnviz: cannot show this view (${(e as Error).message})`;
    }
  }
}

void boot();
