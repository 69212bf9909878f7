/** The views as browser modules: each renders an Attention into an element and returns its handle. */
export { headView, type HeadLoader, type HeadView, type HeadViewOptions, type HeadViewState } from './head-view.js';
export { modelView, type ModelView, type ModelViewOptions, type ModelViewState } from './model-view.js';
export {
  neuronView,
  type NeuronView,
  type NeuronViewOptions,
  type NeuronViewState,
  type NeuronColumns,
} from './neuron-view.js';
export { mountView, VIEWS, type ViewName } from './mount.js';
export { AttnvizViewElement, defineAttnvizElement } from './element.js';
export type { MountedView, ViewHandle } from './handle.js';
export { categoricalColors, THEMES, type Theme, type ThemeName } from './palette.js';
export { prettifyToken, isSpecialToken } from './tokens.js';
export { COLOR_SCALES, type ColorScale, type Combine } from './raster.js';
export { decodeAttention } from '../core/encode.js';
export type { Attention, Tensor } from '../core/attention.js';
