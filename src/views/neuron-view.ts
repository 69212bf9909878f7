/** Neuron view (Vig 2019 §3.3; BertViz neuron_view): q, k, q×k, q·k, softmax for one token. To be written. */
import type { Attention } from '../core/attention.js';
import type { MountedView } from './mount.js';

export interface NeuronViewOptions {
  layer?: number;
  head?: number;
}

export function neuronView(container: HTMLElement, data: Attention, options: NeuronViewOptions = {}): MountedView {
  throw new Error(`neuron view not implemented yet (${container.tagName}, ${data.tokens.length} tokens, ${JSON.stringify(options)})`);
}
