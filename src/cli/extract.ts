/** `attnviz extract`: a model run written to an attention file, layer by layer for checkpoint models. */
import { aggregate, parseAggregate } from '../analysis/aggregate.js';
import type { Attention } from '../core/attention.js';
import { FLOAT_DTYPES, type FloatDType } from '../core/attention-file.js';
import { AttnvizError } from '../core/errors.js';
import { readAttentionFile, writeAttentionFile, writeAttentionStream } from '../core/files.js';
import type { AttentionModel } from '../models/model.js';
import {
  loadForCli,
  MODEL_OPTIONS,
  optionalString,
  positiveInteger,
  required,
  type Command,
  type Values,
} from './command.js';

/**
 * A model loaded for one run: its extracting session is created by that run, of the kind its input needs (a long
 * text: the per-layer sessions alone, not first the short inputs' session as well; LoadOptions.lazy).
 */
const ONE_SHOT = { lazy: true } as const;

export const extract: Command = {
  name: 'extract',
  synopsis: `extract --model <folder|hub id|file> --text "<A>" [--pair "<B>"] --out <file.safetensors> [--truncate]
        [--dtype f32|f16|bf16] [--layers 0,5-7] [--heads 0-3] [--target "<T>" | --max-new-tokens N]
        [--aggregate mean|max|rollout] [--allow-unused]`,
  description: `Run the model and write every layer's and head's attention, queries and keys to an attention file
(docs/attention-file.md), layer by layer: memory holds the weights and one layer's outputs. --dtype: the
file's float type (default f32); --layers, --heads: only these (indices from 0, ranges inclusive).
Encoder-decoder models (BART, Marian, T5, …) read --text with the encoder and --target with the decoder
(teacher forcing), or generate N target tokens greedily. --aggregate replaces each layer's heads by one
pseudo-head: their mean, their max, or the attention rollout through that layer (docs/analysis.md); q and k
are then left out. --allow-unused loads a checkpoint holding tensors the graph neither reads nor knowingly
skips, listing them as a warning.`,
  options: {
    ...MODEL_OPTIONS,
    out: { type: 'string', short: 'o' },
    dtype: { type: 'string' },
    layers: { type: 'string' },
    heads: { type: 'string' },
    aggregate: { type: 'string' },
  },
  async run(v) {
    const [model, text, out] = [required(v, 'model'), required(v, 'text'), required(v, 'out')];
    const dtype = dtypeOption(v);
    const selection = { layers: indexList(v, 'layers'), heads: indexList(v, 'heads') };
    if (v.aggregate === 'all')
      throw new AttnvizError('--aggregate all is for export (a select in the page): use mean, max or rollout');
    const m = await loadForCli(model, v, ONE_SHOT);
    try {
      // Checkpoint models stream layer by layer into the file; the others (and aggregates, which need every
      // layer) give their Attention whole.
      if (m.capabilities.stream && m.stream && v.aggregate === undefined) {
        const stream = m.stream(text, { ...modelOptions(v), ...selection });
        await writeAttentionStream(out, stream, { dtype });
        const { layers, heads, tokens } = stream.header;
        console.error(`wrote ${out}: ${layers.length} layers × ${heads.length} heads × ${tokens.length} tokens`);
        return;
      }
      if (selection.layers || selection.heads)
        throw new AttnvizError(`--layers and --heads work with checkpoint models (not encoder-decoders), not ${model}`);
      const a = aggregated(await attentionOf(m, v), v);
      await writeAttentionFile(out, a, { dtype });
      const [layers, heads, T] = a.attention.dims;
      const ed = a.encoderDecoder;
      console.error(
        ed
          ? `wrote ${out}: ${layers} encoder layers, ${ed.decoder.dims[0]} decoder layers × ${heads} heads × ` +
              `${T} source and ${ed.decoderTokens.length} target tokens`
          : `wrote ${out}: ${layers} layers × ${heads} heads × ${T} tokens`,
      );
    } finally {
      await m.release();
    }
  },
};

/** With --aggregate, the pseudo-layers (analysis/aggregate.ts) in place of the model's layers ('all' keeps them). */
export function aggregated(a: Attention, v: Values): Attention {
  return typeof v.aggregate === 'string' && v.aggregate !== 'all' ? aggregate(a, parseAggregate(v.aggregate)) : a;
}

/** Loads --model, runs it on --text (--pair, --target, --max-new-tokens, --truncate) and releases it. */
export async function attentionFrom(v: Values): Promise<Attention> {
  const model = required(v, 'model');
  required(v, 'text');
  const m = await loadForCli(model, v, ONE_SHOT);
  try {
    return await attentionOf(m, v);
  } finally {
    await m.release();
  }
}

/** --pair, --truncate, --target, --max-new-tokens as AttentionOptions. */
function modelOptions(v: Values) {
  const maxNewTokens = positiveInteger(v, 'max-new-tokens');
  return {
    pair: optionalString(v, 'pair'),
    truncate: v.truncate === true,
    target: optionalString(v, 'target'),
    ...(maxNewTokens !== undefined ? { maxNewTokens } : {}),
  };
}

function attentionOf(m: AttentionModel, v: Values): Promise<Attention> {
  return m.attention(required(v, 'text'), modelOptions(v));
}

/** --dtype: the attention file's float type; f32 when absent. */
function dtypeOption(v: Values): FloatDType {
  if (v.dtype === undefined) return 'F32';
  const dtype = FLOAT_DTYPES.find((d) => d === String(v.dtype).toUpperCase());
  if (!dtype)
    throw new AttnvizError(
      `--dtype must be one of ${FLOAT_DTYPES.map((d) => d.toLowerCase()).join(', ')}, not "${String(v.dtype)}"`,
    );
  return dtype;
}

/** --layers / --heads: comma-separated indices and inclusive ranges ("0,5-7"); undefined when absent. */
function indexList(v: Values, name: string): number[] | undefined {
  const value = v[name];
  if (value === undefined) return undefined;
  const out: number[] = [];
  for (const part of String(value).split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    const [from, to] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [Number.NaN, Number.NaN];
    if (!(from <= to) || to - from > 1e6)
      throw new AttnvizError(`--${name} must be indices and ranges such as 0,5-7, not "${String(value)}"`);
    for (let i = from; i <= to; i++) out.push(i);
  }
  return out;
}

/** The data of a command that reads an attention file (--from) or runs a model (--model, --text), not both. */
export async function attentionOrFile(v: Values): Promise<Attention> {
  const from = optionalString(v, 'from');
  if (from === undefined) return attentionFrom(v);
  const conflicting = Object.keys(MODEL_OPTIONS).filter((name) => v[name] !== undefined);
  if (conflicting.length > 0)
    throw new AttnvizError(
      `--from reads a saved attention file: it cannot be combined with ${conflicting.map((n) => `--${n}`).join(', ')}`,
    );
  return readAttentionFile(from);
}
