/**
 * Entry point of the standalone bundle inlined into exported HTML. It finds each data block
 * `<script type="application/x-attnviz" data-view="head|model|neuron">` (base64 of the binary encoding in
 * core/encode.ts, deflate-raw compressed when data-compression says so), decodes it and mounts the view
 * right after it. Nothing is fetched: the page works from file:// with the network off.
 */
import { decodeAttention } from '../core/encode.js';
import { mountView, type ViewName } from './mount.js';

async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function boot(): Promise<void> {
  for (const script of document.querySelectorAll<HTMLScriptElement>('script[type="application/x-attnviz"]')) {
    const host = document.createElement('div');
    script.after(host);
    try {
      let bytes: Uint8Array = Uint8Array.from(atob(script.textContent!.trim()), (c) => c.charCodeAt(0));
      if (script.dataset.compression === 'deflate-raw') bytes = await inflate(bytes);
      const options = JSON.parse(script.dataset.options ?? '{}') as Record<string, unknown>;
      mountView(host, script.dataset.view as ViewName, decodeAttention(bytes), options);
    } catch (e) {
      host.textContent = `attnviz: cannot show this view (${(e as Error).message})`;
    }
  }
}

void boot();
