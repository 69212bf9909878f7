/**
 * Colours. BertViz colours heads with d3.schemeCategory10 and so repeats after ten (head 10 = head 0); here
 * up to ten heads keep those familiar colours and more get evenly spaced hues, so every head is distinct.
 */
import { hsl } from 'd3-color';
import { interpolateSinebow, schemeCategory10 } from 'd3-scale-chromatic';

/** `n` distinct colours (hex), one per head or layer. */
export function categoricalColors(n: number): string[] {
  if (n <= schemeCategory10.length) return schemeCategory10.slice(0, n);
  // Sinebow is cyclic, so hue i/n never meets hue 0 again at the end.
  return Array.from({ length: n }, (_, i) => hsl(interpolateSinebow(i / n)).formatHex());
}

/** BertViz's inactive-head look: lightness and saturation moved 60 % towards white. */
export function lighten(color: string): string {
  const c = hsl(color);
  const delta = (1 - c.l) * 0.6;
  c.l += delta;
  c.s -= delta;
  return c.formatHex();
}

export type ThemeName = 'light' | 'dark';

export interface Theme {
  name: ThemeName;
  text: string;
  mutedText: string;
  background: string;
  /** Behind a hovered or pinned token. */
  highlight: string;
  /** Frames and separators. */
  border: string;
  /** Positive / negative values in the neuron view. */
  positive: string;
  negative: string;
}

export const THEMES: Record<ThemeName, Theme> = {
  light: {
    name: 'light',
    text: '#111111',
    mutedText: '#666666',
    background: '#ffffff',
    highlight: '#e5e5e5',
    border: '#ccc',
    positive: '#0c36d8',
    negative: '#ff6318',
  },
  dark: {
    name: 'dark',
    text: '#dddddd',
    mutedText: '#999999',
    background: '#111111',
    highlight: '#333',
    border: '#444',
    positive: '#2090dd',
    negative: '#ff6318',
  },
};

/** `'auto'` follows the page's prefers-color-scheme. */
export function resolveTheme(theme: ThemeName | 'auto' | undefined, window?: Window): Theme {
  if (theme === 'light' || theme === 'dark') return THEMES[theme];
  const dark = window?.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
  return THEMES[dark ? 'dark' : 'light'];
}
