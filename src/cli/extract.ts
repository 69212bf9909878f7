/** `attnviz extract`: a model run written to an attention file. */
import type { Attention } from '../core/attention.js';
import { writeAttentionFile } from '../core/attention-file.js';
import { loadModel } from '../models/load-model.js';
import { MODEL_OPTIONS, optionalString, positiveInteger, required, type Command, type Values } from './command.js';

export const extract: Command = {
  name: 'extract',
  synopsis: `extract --model <folder|hub id|file> --text "<A>" [--pair "<B>"] --out <file.safetensors> [--truncate]
        [--target "<T>" | --max-new-tokens N]`,
  description: `Run the model and write every layer's and head's attention, queries and keys to an attention file
(docs/attention-file.md). Encoder-decoder models (BART, Marian, T5, …) read --text with the encoder and
--target with the decoder (teacher forcing), or generate N target tokens greedily.`,
  options: { ...MODEL_OPTIONS, out: { type: 'string', short: 'o' } },
  async run(v) {
    const out = required(v, 'out');
    const a = await attentionFrom(v);
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

/** Loads --model, runs it on --text (--pair, --target, --max-new-tokens, --truncate) and releases it. */
export async function attentionFrom(v: Values): Promise<Attention> {
  const model = required(v, 'model');
  const text = required(v, 'text');
  const maxNewTokens = positiveInteger(v, 'max-new-tokens');
  const m = await loadModel(model);
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
