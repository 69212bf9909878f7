/**
 * The neuron-contributions report of one layer, head and query token: what the neuron view's panel shows, with
 * exact values, as plain data (JSON): `attnviz neurons -o x.json` and the view's JSON button write it.
 */
import type { Attention } from '../core/attention.js';
import { keyContributions, rowContributions } from './contributions.js';
import { attentionRow, headSize, isMasked, neuronColumns, scoreFormula, scoreScale } from './neuron.js';

/** The report for query `token` and `key` (default: the unmasked key it attends to most). */
export function neuronReport(a: Attention, layer: number, head: number, token: number, key?: number) {
  const keyTokens = a.keyTokens ?? a.tokens;
  const size = headSize(a, layer);
  const row = attentionRow(a, layer, head, token);
  let j = key;
  if (j === undefined)
    for (let c = 0; c < keyTokens.length; c++)
      if (!isMasked(a, layer, token, c) && (j === undefined || row[c] > row[j])) j = c;
  const columns = neuronColumns(a, layer, head, token, [], size);
  const k = keyContributions(a, layer, head, token, j!, size);
  const r = rowContributions(a, layer, head, token, size);
  return {
    model: a.model,
    text: a.text,
    tokens: a.tokens,
    ...(a.keyTokens ? { keyTokens: a.keyTokens } : {}),
    layer,
    head,
    query: { index: token, token: a.tokens[token] },
    headSize: size,
    storedHeadSize: a.query!.dims[3],
    rotary: a.rotary ?? null,
    score: { formula: scoreFormula(a), scale: scoreScale(a), positionBias: a.positionBias !== undefined },
    check: { maxDiff: columns.maxDiff, tolerance: columns.tolerance, ok: columns.maxDiff <= columns.tolerance },
    key: { ...k, token: keyTokens[k.key] },
    row: r,
  };
}

export type NeuronReport = ReturnType<typeof neuronReport>;
