/**
 * The engine's side of encoder-decoder models (BART, mBART, Marian, T5, mT5; graph conventions in
 * graph/encoder-decoder.ts). The source text goes to the encoder; the decoder reads either a target text
 * (teacher forcing) or tokens it generates greedily; one run of the graph then gives every layer's encoder
 * self-attention, decoder self-attention and cross-attention with their q and k.
 *
 * Teacher forcing feeds what transformers trains on: the decoder start token (config.json
 * `decoder_start_token_id`), then the target's tokens as the tokenizer makes them (with its special tokens,
 * e.g. BART's `<s>`) without the final EOS, i.e. shift_tokens_right of the target's labels; for mBART, its
 * own shift_tokens_right: the labels' last token (the language code) first, then the others. Generation is
 * greedy (argmax) from the start token until EOS, `maxNewTokens` or the model's positions; each step reruns
 * the whole decoder on a second, lean session (no KV cache: seq2seq targets are short).
 */
import type { Attention, EncoderDecoderAttention, Tensor } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { LOGITS, type DecodingBuildOptions } from '../graph/decoding.js';
import {
  ENCODER_HIDDEN_LAST,
  POSITION_BIAS,
  SEQ2SEQ_INPUTS,
  seq2seqOutputNames,
  type Seq2SeqDims,
  type Seq2SeqPart,
} from '../graph/encoder-decoder.js';
import { HIDDEN_LAST } from '../graph/family.js';
import type { Encoded, TextTokenizer } from '../load/tokenizer.js';
import type { Feed, Runner, RunOutput, Session } from '../runtime/session.js';
import { LazySession } from './lazy-session.js';
import { causalMask } from './feeds.js';
import type { AttentionOptions } from './model.js';

/** What the engine's Model lends an encoder-decoder run. */
export interface Seq2SeqContext {
  source: string;
  modelType: string;
  session: Runner;
  dims: Seq2SeqDims;
  tokenizer: TextTokenizer;
  /** The source text's encoding, checked against (or cut to, with truncate) the model's positions. */
  encode(text: string, truncate: boolean): Encoded;
  /** Builds another session over the same weights (generation's logits graph). */
  build(options: DecodingBuildOptions): Promise<Session>;
  bos: number | null;
  eos: number[];
}

export class Seq2Seq {
  /** The generation session (logits of the last decoder position, no attention outputs), built once. */
  private readonly generatorSession = new LazySession(() =>
    this.c.build({ extract: false, logits: 'last' }).then(async (s) => {
      if (s.outputNames.includes(LOGITS)) return s;
      await s.release();
      throw new AttnvizError(
        `${this.c.source}: model_type ${this.c.modelType} cannot generate in attnviz (no language-model head)`,
      );
    }),
  );

  constructor(private readonly c: Seq2SeqContext) {}

  /** Every layer's and head's encoder, decoder and cross attention, with q and k. */
  async attention(text: string, options: AttentionOptions): Promise<Attention> {
    const { session, dims, tokenizer } = this.c;
    check(
      session.outputNames.includes(seq2seqOutputNames('encoder', 0).probs),
      'this model was loaded with extract: false',
    );
    const encoder = this.encodeSource(text, options);
    const { ids: decoderIds, target, special: decoderSpecial } = await this.decoderInput(encoder.ids, options);
    // onnxruntime writes each layer's probs, q and k straight into its slice of the stacked [L, H, …] arrays.
    const { layers, decoderLayers, heads: H, headDim: d } = dims;
    const S = encoder.ids.length,
      T = decoderIds.length;
    const into: Record<string, RunOutput> = {};
    const stacked = (part: Seq2SeqPart, L: number, rows: number, cols: number) => {
      const make = (perLayer: number[]): Tensor => ({
        dims: [L, ...perLayer],
        data: new Float32Array(L * perLayer.reduce((a, b) => a * b, 1)),
      });
      const t = { probs: make([H, rows, cols]), q: make([H, rows, d]), k: make([H, cols, d]) };
      for (let i = 0; i < L; i++) {
        const names = seq2seqOutputNames(part, i);
        for (const key of ['probs', 'q', 'k'] as const) {
          const size = t[key].data.length / L;
          into[names[key]] = { dims: t[key].dims.slice(1), data: t[key].data.subarray(i * size, (i + 1) * size) };
        }
      }
      return t;
    };
    const enc = stacked('encoder', layers, S, S),
      self = stacked('self', decoderLayers, T, T),
      cross = stacked('cross', decoderLayers, T, S);
    const out = await session.run(this.feeds(session, encoder.ids, decoderIds), into);

    const encoderDecoder: EncoderDecoderAttention = {
      decoderTokens: decoderIds.map((id) => tokenizer.idToToken(id)),
      target,
      decoderInputIds: decoderIds,
      decoderSpecial,
      decoder: self.probs,
      cross: cross.probs,
      decoderQuery: self.q,
      decoderKey: self.k,
      crossQuery: cross.q,
      crossKey: cross.k,
      decoderHiddenLast: out[HIDDEN_LAST],
      ...(out[POSITION_BIAS.decoder] ? { decoderPositionBias: out[POSITION_BIAS.decoder] } : {}),
    };
    return {
      tokens: encoder.tokens,
      text,
      pair: null,
      sentenceBStart: null,
      model: { source: this.c.source, modelType: this.c.modelType },
      causal: false,
      attention: enc.probs,
      query: enc.q,
      key: enc.k,
      hiddenLast: out[ENCODER_HIDDEN_LAST],
      inputIds: encoder.ids,
      special: encoder.special,
      ...(dims.scoreScale !== 1 / Math.sqrt(d) ? { scoreScale: dims.scoreScale } : {}),
      ...(out[POSITION_BIAS.encoder] ? { positionBias: out[POSITION_BIAS.encoder] } : {}),
      encoderDecoder,
    };
  }

  /** The forward pass alone: the decoder's last hidden state `[T, hidden]`. */
  async forward(text: string, options: AttentionOptions): Promise<Tensor> {
    const encoder = this.encodeSource(text, options);
    const { ids } = await this.decoderInput(encoder.ids, options);
    return (await this.c.session.run(this.feeds(this.c.session, encoder.ids, ids)))[HIDDEN_LAST];
  }

  /** Next-token logits of the decoder (`[1, vocab]` or `[T, vocab]`, as loaded with `logits`). */
  async logits(text: string, options: AttentionOptions): Promise<Tensor> {
    check(
      this.c.session.outputNames.includes(LOGITS),
      "this model was loaded without logits (loadModel(source, { logits: 'last' | 'all' }))",
    );
    const encoder = this.encodeSource(text, options);
    const { ids } = await this.decoderInput(encoder.ids, options);
    return (await this.c.session.run(this.feeds(this.c.session, encoder.ids, ids)))[LOGITS];
  }

  async release(): Promise<void> {
    await this.generatorSession.release();
  }

  /** The source text's encoding (a pair was refused by checkAttentionOptions). */
  private encodeSource(text: string, options: AttentionOptions): Encoded {
    return this.c.encode(text, options.truncate === true);
  }

  /** The decoder's input ids: teacher-forced from the target, or generated. */
  private async decoderInput(
    encoderIds: number[],
    options: AttentionOptions,
  ): Promise<{ ids: number[]; target: string; special: boolean[] }> {
    const { target, maxNewTokens } = options;
    const { dims, eos, tokenizer, source } = this.c;
    if (target !== undefined && target !== null) {
      check(maxNewTokens === undefined, 'give either a target text or maxNewTokens, not both');
      check(target.trim() !== '', 'target text is empty');
      // Marian's targets go through target.spm.
      const encoded = tokenizer.encodeTarget ? tokenizer.encodeTarget(target) : tokenizer.encode(target);
      const labels = encoded.ids;
      let ids: number[], special: boolean[];
      if (dims.shift === 'last') {
        // mBART's shift_tokens_right: the labels' last token (the language code) first.
        ids = [labels[labels.length - 1], ...labels.slice(0, -1)];
        special = [encoded.special[labels.length - 1], ...encoded.special.slice(0, -1)];
      } else {
        // shift_tokens_right: the start token first, the final EOS dropped.
        const n = labels.length - (eos.includes(labels[labels.length - 1]) ? 1 : 0);
        ids = [dims.decoderStart, ...labels.slice(0, n)];
        special = [true, ...encoded.special.slice(0, n)];
      }
      if (ids.length > dims.maxPositions) {
        check(
          options.truncate,
          `target is ${ids.length} decoder tokens but ${source} takes at most ` +
            `${dims.maxPositions} positions (pass --truncate / { truncate: true } to cut it)`,
        );
        ids = ids.slice(0, dims.maxPositions);
        special = special.slice(0, dims.maxPositions);
      }
      return { ids, target, special };
    }
    if (maxNewTokens === undefined) {
      throw new AttnvizError(
        `${source} is an encoder-decoder model: give a target text (--target / { target }) or ` +
          'a number of tokens to generate (--max-new-tokens / { maxNewTokens })',
      );
    }
    check(
      Number.isSafeInteger(maxNewTokens) && maxNewTokens > 0,
      `max new tokens must be a positive integer, not ${maxNewTokens}`,
    );
    const ids = await this.greedy(encoderIds, maxNewTokens);
    const skip = new Set([dims.decoderStart, ...eos, ...(this.c.bos === null ? [] : [this.c.bos])]);
    return { ids, target: tokenizer.decode(ids.filter((id) => !skip.has(id))), special: ids.map((id) => skip.has(id)) };
  }

  /**
   * Greedy decoding: the start token, then the most likely next token until EOS, maxNewTokens or the positions run out.
   */
  private async greedy(encoderIds: number[], maxNewTokens: number): Promise<number[]> {
    const session = await this.generatorSession.get();
    const ids = [this.c.dims.decoderStart];
    for (let n = 0; n < maxNewTokens && ids.length < this.c.dims.maxPositions; n++) {
      const { data } = (await session.run(this.feeds(session, encoderIds, ids)))[LOGITS];
      let next = 0;
      for (let v = 1; v < data.length; v++) if (data[v] > data[next]) next = v;
      ids.push(next);
      if (this.c.eos.includes(next)) break;
    }
    return ids;
  }

  /** The inputs of graph/encoder-decoder.ts that `session`'s graph declares. */
  private feeds(session: Runner, encoderIds: readonly number[], decoderIds: readonly number[]): Record<string, Feed> {
    const ints = (xs: readonly number[]): Feed => ({
      type: 'int64',
      data: BigInt64Array.from(xs, BigInt),
      dims: [xs.length],
    });
    const range = (n: number) => ints(Array.from({ length: n }, (_, i) => i));
    const T = decoderIds.length;
    const all: Record<string, () => Feed> = {
      [SEQ2SEQ_INPUTS.inputIds]: () => ints(encoderIds),
      [SEQ2SEQ_INPUTS.positionIds]: () => range(encoderIds.length),
      [SEQ2SEQ_INPUTS.decoderInputIds]: () => ints(decoderIds),
      [SEQ2SEQ_INPUTS.decoderPositionIds]: () => range(T),
      [SEQ2SEQ_INPUTS.decoderCausalMask]: () => ({ type: 'float32', data: causalMask(T), dims: [T, T] }),
    };
    const feeds: Record<string, Feed> = {};
    for (const name of session.inputNames) {
      const make = all[name];
      if (!make) throw new Error(`graph input ${name} has no feed`);
      feeds[name] = make();
    }
    return feeds;
  }
}
