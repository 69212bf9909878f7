/** `attnviz extract`: a model run written to an attention file. */
import { aggregate, parseAggregate } from '../analysis/aggregate.js';
import type { Attention } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { writeAttentionFile } from '../core/files.js';
import {
  loadForCli,
  MODEL_OPTIONS,
  optionalString,
  positiveInteger,
  required,
  type Command,
  type Values,
} from './command.js';

export const extract: Command = {
  name: 'extract',
  synopsis: `extract --model <folder|hub id|file> --text "<A>" [--pair "<B>"] --out <file.safetensors> [--truncate]
        [--target "<T>" | --max-new-tokens N] [--aggregate mean|max|rollout]`,
  description: `Run the model and write every layer's and head's attention, queries and keys to an attention file
(docs/attention-file.md). Encoder-decoder models (BART, Marian, T5, …) read --text with the encoder and
--target with the decoder (teacher forcing), or generate N target tokens greedily. --allow-unused loads a
checkpoint holding tensors the graph neither reads nor knowingly skips, listing them as a warning. --aggregate
replaces each layer's heads by one pseudo-head: their mean, their max, or the attention rollout through that
layer (docs/analysis.md); q and k are then left out.`,
  options: { ...MODEL_OPTIONS, aggregate: { type: 'string' }, out: { type: 'string', short: 'o' } },
  async run(v) {
    const out = required(v, 'out');
    if (v.aggregate === 'all')
      throw new AttnvizError('--aggregate all is for export (a select in the page): use mean, max or rollout');
    const a = aggregated(await attentionFrom(v), v);
    await writeAttentionFile(out, a);
    const [layers, heads, T] = a.attention.dims;
    const ed = a.encoderDecoder;
    console.error(
      ed
        ? `wrote ${out}: ${layers} encoder layers, ${ed.decoder.dims[0]} decoder layers × ${heads} heads × ` +
            `${T} source and ${ed.decoderTokens.length} target tokens`
        : `wrote ${out}: ${layers} layers × ${heads} heads × ${T} tokens`,
    );
  },
};

/** With --aggregate, the pseudo-layers (analysis/aggregate.ts) in place of the model's layers ('all' keeps them). */
export function aggregated(a: Attention, v: Values): Attention {
  return typeof v.aggregate === 'string' && v.aggregate !== 'all' ? aggregate(a, parseAggregate(v.aggregate)) : a;
}

/** Loads --model, runs it on --text (--pair, --target, --max-new-tokens, --truncate) and releases it. */
export async function attentionFrom(v: Values): Promise<Attention> {
  const model = required(v, 'model');
  const text = required(v, 'text');
  const maxNewTokens = positiveInteger(v, 'max-new-tokens');
  const m = await loadForCli(model, v);
  try {
    return await m.attention(text, {
      pair: optionalString(v, 'pair'),
      truncate: v.truncate === true,
      target: optionalString(v, 'target'),
      ...(maxNewTokens !== undefined ? { maxNewTokens } : {}),
    });
  } finally {
    await m.release();
  }
}
