/**
 * The layers every family builds from checkpoint names: a family reads `<prefix><name>.weight` (and `.bias`)
 * with the shapes it expects, so the small closures each build would otherwise write — the prefixed tensor,
 * a linear layer, a LayerNorm, an RMSNorm — are made here once, over the family's checkpoint prefix
 * (`transformer.`, `model.`, … or none), its hidden size and its norm epsilon.
 */
import type { WeightRef, Weights } from '../load/weights.js';
import type { GraphBuilder } from './builder.js';

export interface NamedLayers {
  /** The checkpoint tensor `<prefix><name>`, of `shape`. */
  get(name: string, shape: number[]): WeightRef;
  /** x·Wᵀ (+ b) for W = `<name>.weight` `[nOut, nIn]` (torch's nn.Linear) and, when `bias`, b = `<name>.bias`. */
  linear(x: string, name: string, nIn: number, nOut: number, bias?: boolean): string;
  /** LayerNorm over the last axis with `<name>.weight` and `<name>.bias` `[width]` (the hidden size by default). */
  layerNorm(x: string, name: string, width?: number, out?: string): string;
  /** RMSNorm over the last axis with `<name>.weight` `[width]` (the hidden size by default). */
  rmsNorm(x: string, name: string, width?: number, out?: string): string;
}

export function namedLayers(
  g: GraphBuilder,
  w: Weights,
  prefix: string,
  norm: { hidden: number; eps: number },
): NamedLayers {
  const get = (name: string, shape: number[]) => w.get(prefix + name, shape);
  return {
    get,
    linear: (x, name, nIn, nOut, bias = true) =>
      g.linear(x, get(`${name}.weight`, [nOut, nIn]), bias ? get(`${name}.bias`, [nOut]) : undefined),
    layerNorm: (x, name, width = norm.hidden, out) =>
      g.layerNorm(x, get(`${name}.weight`, [width]), get(`${name}.bias`, [width]), norm.eps, out),
    rmsNorm: (x, name, width = norm.hidden, out) => g.rmsNorm(x, get(`${name}.weight`, [width]), norm.eps, out),
  };
}
