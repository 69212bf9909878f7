/**
 * A standalone model view sent in two parts (export/html.ts): its data block holds every head max-pooled to
 * `[n, m]` and names, in `data-full`, a block later in the page with the full attention. The thumbnails paint
 * from the pooled heads while Chromium is still parsing the full block (tens of MB); once the page is parsed and
 * its first frame is out, the full data is decoded and each layer replaces its pooled row, so panels, hover and
 * click work on full data from then on. Until then a note in the view says so, and a panel shows its head
 * pooled. The host's `data-attnviz-full` is "loading", then "ready" (or "failed"), for image export and tests.
 */
import type { Attention } from '../core/attention.js';
import { decodePageData } from '../core/page-data.js';
import { el } from './dom.js';
import type { MountedView } from './handle.js';
import type { ModelView } from './model-view.js';
import { mountView } from './mount.js';

export function mountSplitModelView(
  host: HTMLElement,
  overview: Attention,
  options: Record<string, unknown>,
  fullId: string,
): MountedView {
  const [L, H, n, m] = overview.attention.dims;
  const T = overview.tokens.length,
    K = (overview.keyTokens ?? overview.tokens).length;
  const shell: Attention = { ...overview, attention: { dims: [L, H, T, K], data: new Float32Array(0) } };
  const view = mountView(host, 'model', shell, options) as ModelView;
  const layer = (data: Float32Array, l: number, size: number) => data.subarray(l * size, (l + 1) * size);
  for (let l = 0; l < L; l++) view.addLayer(l, layer(overview.attention.data, l, H * n * m), [n, m]);
  const note = el('p', {
    class: 'av-note',
    role: 'status',
    text: `Thumbnails from each head max-pooled to ${n} × ${m}; the full data (${T} × ${K} per head) is loading…`,
  });
  view.element.querySelector('.av-controls')?.after(note);
  host.dataset.attnvizFull = 'loading';
  void afterFirstFrame()
    .then(async () => {
      const script = document.getElementById(fullId);
      if (!script) throw new Error('the full data block is missing');
      const full = await decodePageData(script.textContent ?? '', script.dataset);
      const [fl, fh, ft, fk] = full.attention.dims;
      if (fl !== L || fh !== H || ft !== T || fk !== K)
        throw new Error(`the full data is [${full.attention.dims}], the overview's [${L}, ${H}, ${T}, ${K}]`);
      // A layer per task, so the page stays responsive while the rows are redrawn.
      for (let l = 0; l < L; l++) {
        view.addLayer(l, layer(full.attention.data, l, H * T * K));
        await new Promise((resolve) => setTimeout(resolve));
      }
      note.remove();
      host.dataset.attnvizFull = 'ready';
    })
    .catch((e: unknown) => {
      note.textContent = `attnviz: the full data cannot be shown (${(e as Error).message}); thumbnails are pooled`;
      host.dataset.attnvizFull = 'failed';
    });
  return view;
}

/** Resolves once the document is parsed and a frame has been produced after that. */
async function afterFirstFrame(): Promise<void> {
  if (document.readyState === 'loading')
    await new Promise((resolve) => document.addEventListener('DOMContentLoaded', resolve, { once: true }));
  await new Promise((resolve) => requestAnimationFrame(resolve));
  await new Promise((resolve) => setTimeout(resolve));
}
