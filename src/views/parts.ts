/**
 * The "Attention: Encoder / Decoder / Cross" control of encoder-decoder data (BertViz's encoder_attention,
 * decoder_attention, cross_attention). Each view draws one attention at a time, as a plain Attention
 * (core/attention.ts attentionPart): the encoder's self-attention, the decoder's causal self-attention, or
 * cross-attention with decoder tokens as queries (left, rows) and encoder tokens as keys (right, columns).
 *
 * Switching remounts the view on the chosen part inside the same host, carrying over what still applies
 * (layer, heads, theme, …: the view's own `carry`), and puts the select first in the view's controls. The
 * returned handle is the view's, with `part` in its state and update(); the view's own methods (drawn(),
 * addLayer(), …), which it lists in its spec's `forward`, reach the view currently shown. The host
 * (`.attnviz-parts`, `data-part`) and each mounted root carry the handle as `attnvizView`, as mount.ts does.
 */
import { ATTENTION_PARTS, attentionPart, type Attention, type AttentionPart } from '../core/attention.js';
import { check } from '../core/errors.js';
import { el, select } from './dom.js';
import type { ViewHandle } from './handle.js';

export const PART_LABELS: Record<AttentionPart, string> = { encoder: 'Encoder', decoder: 'Decoder', cross: 'Cross' };

export interface PartOptions {
  /** Encoder-decoder data: the attention shown first (default 'encoder'). */
  part?: AttentionPart;
}

/**
 * Options carried into the remounted view: from its last state, the part it showed (`from`), the part it
 * will show (`to`), and the options it was created with.
 */
export type Carry<S, O> = (state: Readonly<S>, from: Attention, to: Attention, options: O) => Partial<O>;

/** How a view is made for one part, and what carries over and what is forwarded when the part changes. */
export interface PartsSpec<S extends object, V extends ViewHandle<S>, O extends PartOptions> {
  create: (host: HTMLElement, data: Attention, options: O) => V;
  carry: Carry<S, O>;
  /** The view's methods beyond ViewHandle, each calling the view currently shown (`current()`). */
  forward: (current: () => V) => Omit<V, keyof ViewHandle<S>>;
}

/**
 * A view's public entry: its single-part `create` for plain data, the part select around it for
 * encoder-decoder data. The one place where views are wrapped.
 */
export function withParts<S extends object, V extends ViewHandle<S>, O extends PartOptions>(
  spec: PartsSpec<S, V, O>,
): (container: HTMLElement, data: Attention, options?: O) => V {
  return (container, data, options = {} as O) =>
    data.encoderDecoder ? mountParts(container, data, options, spec) : spec.create(container, data, options);
}

function mountParts<S extends object, V extends ViewHandle<S>, O extends PartOptions>(
  container: HTMLElement,
  data: Attention,
  options: O,
  { create, carry, forward }: PartsSpec<S, V, O>,
): V {
  const host = el('div', { class: 'attnviz-parts' });
  container.append(host);
  let part: AttentionPart = options.part && ATTENTION_PARTS.includes(options.part) ? options.part : 'encoder';
  let inner: V | null = null;
  const current = () => inner!;

  const mount = (o: O) => {
    const view = create(host, attentionPart(data, part), { ...o, part: undefined });
    inner = view;
    host.dataset.part = part;
    view.element.dataset.part = part;
    const control = select(
      'Attention:',
      ATTENTION_PARTS.map((p) => ({ value: p, label: PART_LABELS[p] })),
      part,
      (p) => base.update({ part: p } as Partial<S & PartOptions>),
    );
    control.classList.add('av-part');
    (view.element.querySelector('.av-controls') ?? view.element).prepend(control);
    Object.defineProperty(view.element, 'attnvizView', { value: handle });
  };

  const switchTo = (next: AttentionPart) => {
    if (next === part) return;
    check(
      ATTENTION_PARTS.includes(next),
      `part must be one of ${ATTENTION_PARTS.join(', ')}, not ${JSON.stringify(next)}`,
    );
    const carried = carry(current().state(), attentionPart(data, part), attentionPart(data, next), options);
    current().destroy();
    part = next;
    mount({ ...options, ...carried });
  };

  const base: ViewHandle<S & PartOptions> = {
    element: host,
    state: () => ({ ...current().state(), part }),
    update: (patch) => {
      const { part: next, ...rest } = patch;
      if (next !== undefined) switchTo(next);
      if (Object.keys(rest).length > 0) current().update(rest as Partial<S>);
    },
    toSVG: () => current().toSVG(),
    toPNG: () => current().toPNG(),
    destroy: () => {
      current().destroy();
      host.remove();
    },
  };
  // The base handle plus forward()'s methods is V; TypeScript cannot see through the Omit.
  const handle = { ...base } as unknown as V;
  mount(options);
  Object.assign(handle, forward(current));
  return handle;
}

/**
 * The layer to show on the part about to be shown, and its `includeLayers` (cut to the layers that part has;
 * encoder and decoder may have different numbers): `wanted` if it is offered, else the last layer offered.
 */
export function carryLayer(
  wanted: number,
  includeLayers: number[] | undefined,
  to: Attention,
): { layer: number; includeLayers?: number[] } {
  const L = to.attention.dims[0];
  const kept = includeLayers?.filter((l) => l < L);
  const offered = kept && kept.length > 0 ? kept : Array.from({ length: L }, (_, i) => i);
  return {
    layer: offered.includes(wanted) ? wanted : offered[offered.length - 1],
    ...(kept && kept.length > 0 ? { includeLayers: kept } : { includeLayers: undefined }),
  };
}
