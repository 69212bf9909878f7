/** Model view (Vig 2019 §3.2; BertViz model_view): every layer × head as a thumbnail. To be written. */
import type { Attention } from '../core/attention.js';
import type { MountedView } from './mount.js';

export interface ModelViewOptions {
  includeLayers?: number[];
  includeHeads?: number[];
}

export function modelView(container: HTMLElement, data: Attention, options: ModelViewOptions = {}): MountedView {
  throw new Error(`model view not implemented yet (${container.tagName}, ${data.tokens.length} tokens, ${JSON.stringify(options)})`);
}
