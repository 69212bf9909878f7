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

/** Base64 → bytes: the native decoder where the browser has one (fast on tens of MB), else a table. */
function fromBase64(text: string): Uint8Array {
  const native = (Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array }).fromBase64;
  if (native) return native(text);
  const table = new Uint8Array(128);
  for (let i = 0; i < 64; i++) table['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;
  const n = text.length - (text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0);
  const out = new Uint8Array((n * 3) >> 2);
  for (let i = 0, o = 0; i < n; i += 4) {
    const v = (table[text.charCodeAt(i)] << 18) | (table[text.charCodeAt(i + 1)] << 12) | (table[text.charCodeAt(i + 2)] << 6) | table[text.charCodeAt(i + 3)];
    out[o++] = v >> 16;
    if (o < out.length) out[o++] = (v >> 8) & 255;
    if (o < out.length) out[o++] = v & 255;
  }
  return out;
}

async function boot(): Promise<void> {
  for (const script of document.querySelectorAll<HTMLScriptElement>('script[type="application/x-attnviz"]')) {
    const host = document.createElement('div');
    script.after(host);
    try {
      // User Timing marks let benchmarks split load time into decoding and drawing.
      performance.mark('attnviz:decode-start');
      let bytes = fromBase64(script.textContent!.trim());
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
