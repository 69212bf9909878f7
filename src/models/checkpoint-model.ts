/**
 * The engine: source → folder → config, weights, tokenizer → ONNX graph → onnxruntime session → Attention.
 * `loadModel` builds the session once; `model.attention(text)` runs it. No global state: two models
 * loaded side by side are independent.
 */
import { resolve } from 'node:path';
import type { Attention, AttentionHeader, AttentionStream, Tensor } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { GraphBuilder } from '../graph/builder.js';
import { decodeModel } from '../graph/onnx.js';
import { familyFor, ggufFamily } from '../graph/families.js';
import {
  checkAllRead,
  HIDDEN_LAST,
  INPUTS,
  layerBiasName,
  outputNames,
  POSITION_BIAS_OUTPUT,
  type Family,
  type SplitLayer,
  type ModelDims,
} from '../graph/family.js';
import type { LlamaConfig } from '../graph/llama.js';
import { attentionGraph } from '../graph/decoder.js';
import type { MemoryFile } from '../graph/builder.js';
import { cacheNames, LOGITS, type DecodingBuildOptions, type LogitsMode } from '../graph/decoding.js';
import { readConfig, type ModelConfig } from '../load/config.js';
import { resolveSource } from '../load/sources.js';
import { openGgufModel } from '../load/gguf-checkpoint.js';
import { Sampler, softmax, topK } from './sampler.js';
import { encodeWithin, loadTokenizer, type Encoded, type TextTokenizer } from '../load/tokenizer.js';
import { Weights } from '../load/weights.js';
import {
  createSession,
  GroupedSession,
  Session,
  StagedSession,
  type Feed,
  type GroupedRunner,
  type Runner,
  type RunOutput,
  type SessionOptions,
} from '../runtime/session.js';
import { LazySession } from './lazy-session.js';
import { SplitSession, splitGroups, splitRuns } from './split-session.js';
import { SizedSession, type SessionKind } from './sized-session.js';
import { handOver, lentArray, returnLent, sparesBack, trimHeap } from '../runtime/ort-direct.js';
import { splitStages } from '../graph/stages.js';
import { causalMask } from './feeds.js';
import {
  BufferPool,
  collect,
  LayerStream,
  selectIndices,
  stackedFor,
  runParts,
  stageParts,
  type Selection,
  type Stacked,
  type StagePart,
} from './layer-stream.js';
import {
  cannotGenerate,
  checkAttentionOptions,
  type AttentionModel,
  type AttentionOptions,
  type GenerateOptions,
  type Generation,
  type GenerationStep,
  type ModelCapabilities,
} from './model.js';
import { Seq2Seq } from './seq2seq.js';
import { withPrivateWeights } from './private-weights.js';
import type { Seq2SeqDims } from '../graph/encoder-decoder.js';

export interface LoadOptions {
  /** onnxruntime intra-op threads (default: the cores this process may use, os.availableParallelism()). */
  threads?: number;
  /** Environment for hub-cache lookups (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Download progress on a terminal (default true). */
  progress?: boolean;
  /**
   * false builds the plain forward pass with no attention outputs (the benchmark's baseline);
   * `attention()` is then unavailable and only `forward()` runs.
   */
  extract?: boolean;
  /**
   * Also output next-token logits (decoders with a language-model head): 'last' position only, `[1, vocab]`,
   * or 'all', `[T, vocab]`; read them with `logits()`. Off by default: `attention()` does not pay for them.
   */
  logits?: LogitsMode;
  /**
   * Load even when the checkpoint holds tensors the family's graph neither reads nor knowingly skips (a
   * variant attnviz may not understand: its attention could be wrong). They are listed in
   * `model.unusedTensors`; the CLI prints them as a warning. Off by default: such a checkpoint is an error.
   */
  allowUnused?: boolean;
  /**
   * How onnxruntime gets the weights. 'map' (default): it maps the files themselves — no copy, no extra disk
   * or memory (an 8B checkpoint is 16 GB), but a file truncated while the model is loaded kills the process
   * (SIGBUS) and one overwritten in place silently changes its results. 'copy': it maps private copies of the
   * weight files, made in TMPDIR (reflinks where the file system can) and removed once the sessions exist
   * (private-weights.ts): what the server uses, a long-lived process over files that others may change.
   * 'memory': they are read and handed over as bytes (onnxruntime copies them). Costs compared by
   * bench/weights-source.ts.
   */
  weights?: 'copy' | 'memory' | 'map';
  /**
   * Extracting layer by layer (`staged`), a decoder built on graph/decoder.ts, or ModernBERT, computes each
   * layer's attention this many heads at a time (implies `staged` unless that is false): `stream()` then yields
   * a layer in parts. Default: by the input's length, as many heads as keep a run's float32 scores within 64 MB
   * (models/split-session.ts runHeads: all 32 of Llama-3.2-1B's at 512 tokens, 4 at 2,048, 1 at 4,096).
   */
  headChunk?: number;
  /**
   * Extract with one onnxruntime session per layer (or run of heads), true, or with one session for the whole
   * graph, false, whatever the input. Per layer, `stream()` holds one layer's outputs at a time; one session
   * runs as fast as the plain pass (onnxruntime's memory arena and spinning threads, no per-layer runs) but
   * computes every layer before `stream()` yields the first. Default: decided per call from the input's length,
   * one session while every layer's outputs at that length fit 1 GB (ONE_SESSION_BYTES), per layer above; the
   * model holds one kind at a time and creates the other when an input needs it (models/sized-session.ts), which
   * takes about a load's time (with `weights: 'copy'`, a new private copy of the weight files too).
   */
  staged?: boolean;
  /**
   * The budget of the default choice above: one session while every layer's probabilities, q and k at the input's
   * length take at most this many bytes (default ONE_SESSION_BYTES, 1 GB).
   */
  oneSessionBytes?: number;
  /**
   * Create the extracting session (of a model that extracts layer by layer: `stream` in its capabilities) at the
   * first call, of the kind that call's input needs, instead of at load, of the short inputs' kind. For a
   * one-shot run (`attnviz extract`): a long first input then costs one session's creation, not two (the
   * short kind's at load, released unused, then the staged kind's: about a load's time more). The load then
   * returns sooner and the first call pays for the creation; a graph that onnxruntime refuses fails that call
   * instead of the load. Default false (the server, and callers that run many inputs, keep today's behaviour).
   */
  lazy?: boolean;
}

/** Up to this many bytes of outputs at an input's length (probabilities, q and k in float32), one session. */
export const ONE_SESSION_BYTES = 1e9;

/** Float32 bytes of every layer's probabilities, q and k at `tokens` tokens (default: the longest input). */
export function extractionBytes(dims: ModelDims, tokens = dims.maxPositions): number {
  const { layers, heads, headDim } = dims;
  return layers * heads * tokens * (tokens + 2 * headDim) * 4;
}

/** The extracting session an input of `tokens` tokens runs on by default (LoadOptions.staged). */
export function sessionKindFor(dims: ModelDims, tokens: number, budget = ONE_SESSION_BYTES): SessionKind {
  return extractionBytes(dims, tokens) <= budget ? 'one' : 'staged';
}

/** What a loaded model keeps besides its session. */
interface Internals {
  /**
   * What each stage of the extracting session computes at T tokens (stageParts, runParts), asked once the
   * session of T's kind exists; none for a plain session.
   */
  parts(T: number): readonly (StagePart | null)[];
  /** Builds another session over the same weights (generation's lean graph). */
  build(options: DecodingBuildOptions): Promise<Session>;
  bos: number | null;
  eos: number[];
  /** Rows of the embedding (config.json vocab_size, checked against the weights by the build): ids must be below. */
  vocab: number;
}

/** attention() and stream() options of a checkpoint model: AttentionOptions, a selection, buffer reuse. */
export interface ExtractOptions extends AttentionOptions, Selection {
  /**
   * Return tensors that this model keeps and overwrites on its next `reuse` call of the same size, instead of
   * fresh ones: no fresh output memory to touch, for a caller that is done with a result before asking for the
   * next (a server encoding it, a benchmark). Default false.
   */
  reuse?: boolean;
}

/** Tensors by name (Stacked, a whole run's outputs), some of whose arrays may be lent. */
type Lendable = { [name: string]: Tensor | undefined } | Stacked;

/** Runs `write`; if it fails, the lent arrays of `tensors` go back to the spares. */
async function freshOrReturned<T>(tensors: Lendable, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    for (const t of Object.values(tensors) as (Tensor | undefined)[]) if (t) returnLent(t.data);
    throw e;
  }
}

/** The same tensors with the caller's arrays over lent arrays' memory (handOver); other arrays as they are. */
function handedOver<T extends Lendable>(tensors: T): T {
  const entries = (Object.entries(tensors) as [string, Tensor | undefined][]).flatMap(([k, t]) =>
    t ? [[k, { dims: t.dims, data: handOver(t.data) }]] : [],
  );
  return Object.fromEntries(entries) as T;
}

/** A Hugging Face checkpoint (folder, hub id) or a GGUF file, built into an ONNX graph and run on onnxruntime. */
export class Model implements AttentionModel {
  private constructor(
    /** What the user passed to loadModel. */
    readonly source: string,
    /** The model folder it resolved to. */
    readonly dir: string,
    readonly family: Family<ModelDims>,
    readonly dims: ModelDims,
    readonly tokenizer: TextTokenizer,
    private readonly session: Runner,
    readonly weightBytes: number,
    private readonly internals: Internals,
    /** Checkpoint tensors loaded with allowUnused that nothing reads (see LoadOptions.allowUnused). */
    readonly unusedTensors: readonly string[] = [],
  ) {}

  /** The generation session (logits of the last position, KV cache), built once. */
  private readonly generatorSession = new LazySession(() =>
    this.internals.build({ extract: false, logits: 'last', kvCache: true }).then(async (s) => {
      if (s.outputNames.includes(LOGITS) && s.inputNames.includes(cacheNames(0).pastKey)) return s;
      await s.release();
      throw new AttnvizError(
        `${this.source}: model_type ${this.family.modelType} cannot generate in attnviz (no language-model head)`,
      );
    }),
  );
  private seq2seqRunner?: Seq2Seq;
  /** Output buffers kept across calls (layer-stream.ts). */
  private readonly pool = new BufferPool();

  get modelType(): string {
    return this.family.modelType;
  }

  get causal(): boolean {
    return this.family.causal;
  }

  get capabilities(): ModelCapabilities {
    const encoderDecoder = this.family.encoderDecoder === true;
    return {
      pair: !encoderDecoder,
      target: encoderDecoder,
      generate: this.family.lmHead === true && !encoderDecoder,
      logits: this.session.outputNames.includes(LOGITS),
      stream: this.streams,
    };
  }

  /** Encoder-decoder families run through seq2seq.ts; undefined for the others. */
  private seq2seq(): Seq2Seq | undefined {
    if (!this.family.encoderDecoder) return undefined;
    return (this.seq2seqRunner ??= new Seq2Seq({
      source: this.source,
      modelType: this.family.modelType,
      session: this.session,
      dims: this.dims as Seq2SeqDims,
      tokenizer: this.tokenizer,
      encode: (text, truncate) => this.encode(text, { truncate }),
      build: this.internals.build,
      bos: this.internals.bos,
      eos: this.internals.eos,
    }));
  }

  static async load(source: string, options: LoadOptions = {}): Promise<Model> {
    // A .gguf file is read in place (load/gguf-checkpoint.ts): its tensors are the weights, nothing is written.
    const gguf = /\.gguf$/i.test(source) ? openGgufModel(resolve(source)) : null;
    const dir = gguf ? resolve(source) : await resolveSource(source, options);
    const config = gguf ? gguf.config : await readConfig(dir);
    const family = gguf ? ggufFamily(gguf.architecture) : familyFor(config);
    const dims = family.readConfig(config);
    const weights = gguf ? gguf.weights : await Weights.open(dir);
    // The tokenizer is built (~0.3 s of JavaScript for BERT's) while onnxruntime creates the sessions on its own
    // threads; awaited once they exist, and they are released if it fails.
    const tokenizing: Promise<TextTokenizer> = gguf
      ? Promise.resolve(gguf.tokenizer)
      : loadTokenizer(dir, family.modelType);
    tokenizing.catch(() => undefined);
    // Repacked quantized weights (GGUF) go with the graph as bytes ("memory files"; onnxruntime copies them),
    // and all weights do with LoadOptions.weights 'memory'.
    const graph = (o: DecodingBuildOptions) => {
      const g = new GraphBuilder(weights, { inMemory: options.weights === 'memory' });
      family.build(g, weights, dims, o);
      return { bytes: g.toBytes(), memory: g.memoryFiles() };
    };
    // Sessions map the files themselves unless asked to map private copies of them (the server does).
    // Once a session exists, the heap holes its creation left (freed copies of initializers) go back to the system.
    const over = async <T>(create: (root: string) => Promise<T>): Promise<T> => {
      const session = await (options.weights === 'copy' && !weights.hasQuantized()
        ? withPrivateWeights(weights, create)
        : create(weights.root));
      trimHeap();
      return session;
    };
    // A graph's memory files go only through arguments: a closure of this function that named `main` would keep
    // them, through the context `build` shares, as long as the model (one more copy of every quantized weight).
    // `create`: on the binding (Session.create) or on onnxruntime's C API where it loads (createSession).
    const sessionOf = <S extends Runner>(
      { bytes, memory }: ReturnType<typeof graph>,
      create: (graph: Uint8Array, root: string, o: SessionOptions) => Promise<S>,
    ) => over((root) => create(bytes, root, { threads: options.threads, memory }));
    // An extracting session of either kind over a graph (sized-session.ts): one for the whole graph, or one per
    // stage (splitStages at the same groups).
    // Staged, a decoder.ts family (and ModernBERT) is built without its attention (BuildOptions.split), which one
    // more session computes for every layer (split-session.ts); `split` tells, once such a session was made.
    let split = false;
    const extractingOf = (kind: SessionKind, groups: string[][], built?: ReturnType<typeof graph>) => {
      const o = { threads: options.threads, memory: [] as MemoryFile[] };
      if (kind === 'one') {
        const { bytes, memory } = built ?? graph(mainOptions);
        return over((root): Promise<GroupedRunner> => GroupedSession.create(bytes, groups, root, { ...o, memory }));
      }
      const layers: SplitLayer[] = [];
      const { bytes, memory } = graph({ ...mainOptions, split: layers });
      if (layers.length !== dims.layers)
        return over((root): Promise<GroupedRunner> => StagedSession.create(splitStages(bytes, groups), root, o));
      split = true;
      const attention = (extras: SplitLayer) => {
        const g = new GraphBuilder(weights);
        attentionGraph(g, dims.headDim, extras);
        return g.toBytes();
      };
      const stages = splitStages(bytes, splitGroups(layers));
      const { heads, headDim } = dims;
      return over(
        (root): Promise<GroupedRunner> =>
          SplitSession.create(stages, layers, attention, { heads, headDim, headChunk: options.headChunk }, root, {
            ...o,
            memory,
          }),
      );
    };
    const build = (o: DecodingBuildOptions) => sessionOf(graph(o), Session.create);
    const extract = options.extract ?? true;
    const mainOptions = { extract, logits: options.logits };
    const main = graph(mainOptions);
    // Every tensor is read or knowingly skipped, else the checkpoint is a variant the graph may misread.
    const unused = checkAllRead(family, weights, options.allowUnused ?? false);
    // Extraction runs layer by layer (layer-stream.ts): one stage per layer, then the rest of the graph, on one
    // session while every layer's outputs at the input's length fit ONE_SESSION_BYTES, else on a session per
    // stage (memory bounded by one layer). The short inputs' kind is created now (or, lazy, the first call's kind
    // then), the other when an input needs it, from the graph built again (keeping `main` would keep a GGUF
    // model's repacked weights). Families whose graphs also output score biases (MPNet, BLOOM, DeBERTa) run whole.
    const grouped = extract && !family.encoderDecoder && !hasBiasOutputs(main.bytes);
    let session: Runner;
    let parts: Internals['parts'] = () => [];
    if (grouped) {
      const groups = layerGroups(dims);
      const { input, output } = decodeModel(main.bytes).graph;
      // headChunk implies staged: runs of heads are the split session's.
      const kindFor = (tokens: number): SessionKind =>
        options.staged === undefined
          ? options.headChunk !== undefined
            ? 'staged'
            : sessionKindFor(dims, tokens, options.oneSessionBytes)
          : options.staged
            ? 'staged'
            : 'one';
      const first = kindFor(1);
      const rest = output.map((o) => o.name).filter((name) => !groups.flat().includes(name));
      // Lazy, the first call's factory holds `main` (through its argument, see sessionOf) until that call: used
      // if it needs one session, let go before the staged kind's graph is built if not.
      const firstCall = (built: ReturnType<typeof graph>) => {
        let held: typeof built | undefined = built;
        return {
          create: (kind: SessionKind) => {
            const one = kind === 'one' ? held : undefined;
            held = undefined;
            return extractingOf(kind, groups, one);
          },
        };
      };
      const sized = new SizedSession(
        kindFor,
        (kind) => extractingOf(kind, groups),
        rest.length > 0 ? [...groups, rest] : groups,
        input.map((i) => i.name),
        output.map((o) => o.name),
        options.lazy ? firstCall(main) : { kind: first, session: await extractingOf(first, groups, main) },
      );
      session = sized;
      const whole = stageParts(sized, dims.layers, dims.heads);
      parts = (T) =>
        split && kindFor(T) === 'staged' ? runParts(splitRuns(dims.layers, dims.heads, T, options.headChunk)) : whole;
    } else if (extract && !family.encoderDecoder)
      // Score-bias families: one run of the whole graph (attentionWhole), through the C API where it loads, which
      // writes every output in place (no copy of each into fresh memory, as the binding makes). `main` goes as an
      // argument, as everywhere here (see sessionOf).
      session = await extractingOf('one', [], main);
    // The plain pass (extract: false) on the extracting sessions' path, the C API where it loads: the same runtime
    // for both sides of extraction's benchmarks, and the weights' copies and repacking done on a worker thread,
    // whose glibc arena malloc_trim leaves leaner than the main thread's (8B-shaped Q4_K, 4 layers: resident
    // 1.20× the tensor bytes on the binding, 1.16× so; bench/RESULTS.md). Encoder-decoders keep the binding.
    else session = await sessionOf<Runner>(main, !extract && !family.encoderDecoder ? createSession : Session.create);
    if (options.logits && !session.outputNames.includes(LOGITS)) {
      await session.release();
      throw new AttnvizError(
        `${source}: model_type ${family.modelType} has no language-model head in attnviz, so no logits`,
      );
    }
    const tokenizer = await tokenizing.catch(async (e: unknown) => {
      await session.release();
      throw e;
    });
    return new Model(
      source,
      dir,
      family,
      dims,
      tokenizer,
      session,
      weights.byteLength(),
      {
        build,
        parts,
        ...specialIds(config),
        vocab: config.raw.vocab_size === undefined ? Number.MAX_SAFE_INTEGER : config.size('vocab_size'),
      },
      unused,
    );
  }

  tokenize(text: string, pair: string | null = null): Encoded {
    return this.tokenizer.encode(text, pair);
  }

  /**
   * Tokenizes `text` (and `pair`) and returns every layer's and head's attention, q and k (or the layers and
   * heads selected, without q and k when `qk` is false).
   */
  async attention(text: string, options: ExtractOptions = {}): Promise<Attention> {
    checkAttentionOptions(this, options);
    const seq2seq = this.seq2seq();
    if (seq2seq) return seq2seq.attention(text, options);
    return this.attentionOf(this.encode(text, options), text, options.pair ?? null, options);
  }

  /**
   * The kind of extracting session the model holds now (LoadOptions.staged): 'one', 'staged', or undefined for
   * models that extract whole (encoder-decoders, score-bias families) or not at all, before the first call of a
   * model loaded `lazy`, and after release().
   */
  get sessionKind(): SessionKind | undefined {
    return this.session instanceof SizedSession ? this.session.kind : undefined;
  }

  /** Extracting sessions of either kind created so far (LoadOptions.lazy; 0 for models without `sessionKind`). */
  get sessionsCreated(): number {
    return this.session instanceof SizedSession ? this.session.created : 0;
  }

  /** Whether `stream()` works: extraction by layer (not encoder-decoders, not score-bias families). */
  get streams(): boolean {
    return isGrouped(this.session);
  }

  /**
   * The attention of `text` one layer at a time (see AttentionStream): each layer is computed when the
   * iteration asks for it, in buffers the next layer reuses, so memory holds one layer's outputs at a time.
   * Not for encoder-decoder models.
   */
  stream(text: string, options: ExtractOptions = {}): AttentionStream {
    check(!this.family.encoderDecoder, `${this.source}: encoder-decoder models have no layer stream; use attention()`);
    checkAttentionOptions(this, options);
    return this.streamOf(this.encode(text, options), text, options.pair ?? null, options);
  }

  private streamOf(encoded: Encoded, text: string, pair: string | null, selection: Selection, target?: Stacked) {
    const { session } = this;
    check(isGrouped(session), 'this model was loaded with extract: false');
    return new LayerStream(
      session,
      () => this.internals.parts(encoded.ids.length),
      this.feeds(encoded),
      this.header(encoded, text, pair, selection),
      this.dims.heads,
      this.pool,
      target,
    );
  }

  private header(encoded: Encoded, text: string, pair: string | null, selection: Selection): AttentionHeader {
    const { layers, heads, headDim, hidden } = this.dims;
    return {
      ...this.info(encoded, text, pair),
      layers: selectIndices(selection.layers, layers, 'layer'),
      heads: selectIndices(selection.heads, heads, 'head'),
      qk: selection.qk ?? true,
      headDim,
      hidden,
    };
  }

  private async attentionOf(
    encoded: Encoded,
    text: string,
    pair: string | null,
    options: ExtractOptions = {},
  ): Promise<Attention> {
    if (!isGrouped(this.session) && this.session.outputNames.includes(outputNames(0).probs)) {
      check(
        !options.layers && !options.heads && options.qk !== false,
        `${this.source}: model_type ${this.family.modelType} extracts every layer and head at once (no selection)`,
      );
      return this.attentionWhole(encoded, text, pair, options.reuse ?? false);
    }
    const header = this.header(encoded, text, pair, options);
    const { layers, heads } = header;
    const base = {
      ...this.info(encoded, text, pair),
      ...(layers.length < this.dims.layers ? { layers } : {}),
      ...(heads.length < this.dims.heads ? { heads } : {}),
    };
    if (options.reuse) {
      const stacked = stackedFor(header, (role, n) => this.pool.get(`stacked.${role}`, n));
      return collect(this.streamOf(encoded, text, pair, options, stacked), stacked, base);
    }
    // Fresh arrays take the memory of results already collected, written through lent arrays and handed over
    // after the run (ort-direct.ts lentArray says why).
    await sparesBack();
    const stacked = stackedFor(header, (_, n) => lentArray(n));
    const result = await freshOrReturned(stacked, () =>
      collect(this.streamOf(encoded, text, pair, options, stacked), stacked, base),
    );
    return { ...result, ...handedOver(stacked) };
  }

  /**
   * One run of the whole graph (families with score-bias outputs): every layer, head and q/k, with the biases.
   */
  private async attentionWhole(
    encoded: Encoded,
    text: string,
    pair: string | null,
    reuse: boolean,
  ): Promise<Attention> {
    const { layers, heads, headDim } = this.dims;
    const T = encoded.ids.length;
    // As attentionOf's: memory onnxruntime writes in place, kept by the model (reuse) or fresh, taking that of
    // results already collected and handed over after the run.
    if (!reuse) await sparesBack();
    const tensor = (role: string, dims: number[]) => {
      const length = dims.reduce((a, b) => a * b, 1);
      return { dims, data: reuse ? this.pool.get(`whole.${role}`, length) : lentArray(length) };
    };
    const attention = tensor('probs', [layers, heads, T, T]),
      query = tensor('q', [layers, heads, T, headDim]),
      key = tensor('k', [layers, heads, T, headDim]);
    // Families with a bias of their own in every layer (DeBERTa) output it too; the others one shared by all.
    const names = this.session.outputNames;
    const layerBias = names.includes(layerBiasName(0)) ? tensor('layerBias', [layers, heads, T, T]) : null;
    const into: Record<string, RunOutput> = names.includes(POSITION_BIAS_OUTPUT)
      ? { [POSITION_BIAS_OUTPUT]: tensor('positionBias', [heads, T, T]) }
      : {};
    for (let i = 0; i < layers; i++) {
      const o = outputNames(i);
      for (const [name, t] of [
        [o.probs, attention],
        [o.q, query],
        [o.k, key],
        ...(layerBias ? [[layerBiasName(i), layerBias] as const] : []),
      ] as const) {
        const size = t.data.length / layers;
        into[name] = { dims: t.dims.slice(1), data: t.data.subarray(i * size, (i + 1) * size) };
      }
    }
    const positionBias = into[POSITION_BIAS_OUTPUT];
    const lent = {
      attention,
      query,
      key,
      ...(layerBias ? { layerBias } : {}),
      ...(positionBias ? { positionBias } : {}),
    };
    const out = await freshOrReturned(lent, () => this.session.run(this.feeds(encoded), into));
    const mine = handedOver(lent);
    return {
      ...this.info(encoded, text, pair),
      attention: mine.attention,
      query: mine.query,
      key: mine.key,
      hiddenLast: out[HIDDEN_LAST],
      ...(mine.positionBias ? { positionBias: mine.positionBias } : {}),
      ...(mine.layerBias ? { layerPositionBias: mine.layerBias } : {}),
    };
  }

  /** The fields of an Attention that do not come from the graph. */
  private info(encoded: Encoded, text: string, pair: string | null) {
    return {
      tokens: encoded.tokens,
      text,
      pair,
      sentenceBStart: encoded.sentenceBStart,
      model: { source: this.source, modelType: this.family.modelType },
      causal: this.family.causal,
      inputIds: encoded.ids,
      special: encoded.special,
      ...rotaryFields(this.dims),
      ...scoreFields(this.dims),
    };
  }

  /** Next-token logits for `text`: `[1, vocab]` or `[T, vocab]`, as loaded with `logits`. */
  async logits(text: string, options: AttentionOptions = {}): Promise<Tensor> {
    const seq2seq = this.seq2seq();
    if (seq2seq) return seq2seq.logits(text, options);
    check(
      this.session.outputNames.includes(LOGITS),
      "this model was loaded without logits (loadModel(source, { logits: 'last' | 'all' }))",
    );
    return (await this.session.run(this.feeds(this.encode(text, options)), {}, [LOGITS]))[LOGITS];
  }

  /**
   * Continues `prompt` (null or '' = from BOS alone) token by token, then returns the text and, unless loaded
   * with extract: false, the attention over prompt + generated tokens (one run of the main session). The
   * steps run on a second, lean session — last-position logits, a KV cache, no attention outputs — built on
   * first use over the same weights, which are then held twice in memory until release().
   */
  async generate(prompt: string | null, options: GenerateOptions): Promise<Generation> {
    if (!this.capabilities.generate) throw cannotGenerate(this);
    const { maxNewTokens } = options;
    check(
      Number.isSafeInteger(maxNewTokens) && maxNewTokens > 0,
      `max new tokens must be a positive integer, not ${maxNewTokens}`,
    );
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    const sampler = new Sampler({ temperature: options.temperature ?? 1, topP: options.topP ?? 1, seed });
    const { bos, eos } = this.internals;
    let ids: number[];
    if (prompt === null || prompt === '') {
      check(bos !== null, `${this.source} has no bos_token_id to start from: give a prompt`);
      ids = [bos];
    } else ids = this.encode(prompt, {}).ids;
    const promptLength = ids.length;

    const session = await this.generatorSession.get();
    // The cache starts empty ([kvHeads, 0, d] per layer); each run feeds the tokens not yet in it.
    const kvHeads = (this.dims as Partial<LlamaConfig>).kvHeads ?? this.dims.heads;
    const empty: Feed = { type: 'float32', data: new Float32Array(0), dims: [kvHeads, 0, this.dims.headDim] };
    const past: Record<string, Feed> = {};
    for (let i = 0; i < this.dims.layers; i++) past[cacheNames(i).pastKey] = past[cacheNames(i).pastValue] = empty;
    let cached = 0;
    let stopped: Generation['stopped'] = 'length';
    const alternatives = options.alternatives ?? 0;
    check(
      Number.isSafeInteger(alternatives) && alternatives >= 0,
      `alternatives must be a non-negative integer, not ${alternatives}`,
    );
    const steps: GenerationStep[] = [];
    const named = ({ id, probability }: { id: number; probability: number }) => ({
      id,
      token: this.tokenizer.idToToken(id),
      probability,
    });
    for (let n = 0; n < maxNewTokens; n++) {
      if (ids.length >= this.dims.maxPositions) {
        stopped = 'positions';
        break;
      }
      const fresh = ids.slice(cached);
      const out = await session.run({ ...this.feeds({ ids: fresh, typeIds: fresh.map(() => 0) }, cached), ...past });
      for (let i = 0; i < this.dims.layers; i++) {
        const c = cacheNames(i);
        past[c.pastKey] = { type: 'float32', ...out[c.presentKey] };
        past[c.pastValue] = { type: 'float32', ...out[c.presentValue] };
      }
      cached = ids.length;
      const { data, dims } = out[LOGITS];
      const row = data.subarray(data.length - dims[dims.length - 1]);
      const next = sampler.sample(row);
      if (alternatives > 0) {
        const probs = softmax(row);
        steps.push({ ...named({ id: next, probability: probs[next] }), top: topK(probs, alternatives).map(named) });
      }
      ids.push(next);
      options.onToken?.({ id: next, token: this.tokenizer.idToToken(next), index: ids.length - 1 });
      if (eos.includes(next)) {
        stopped = 'eos';
        break;
      }
    }

    const isSpecial = (id: number) => id === bos || eos.includes(id);
    const encoded: Encoded = {
      ids,
      tokens: ids.map((id) => this.tokenizer.idToToken(id)),
      typeIds: ids.map(() => 0),
      sentenceBStart: null,
      special: ids.map(isSpecial),
    };
    const text = this.tokenizer.decode(ids.filter((id) => !isSpecial(id)));
    const extracts = isGrouped(this.session);
    const attention = extracts ? await this.attentionOf(encoded, text, null) : undefined;
    return {
      ids,
      tokens: encoded.tokens,
      promptLength,
      text,
      stopped,
      seed,
      ...(attention ? { attention: { ...attention, promptLength } } : {}),
      ...(alternatives > 0 ? { steps } : {}),
    };
  }

  /** The forward pass alone: the last hidden state `[T, hidden]`. */
  async forward(text: string, options: AttentionOptions = {}): Promise<Tensor> {
    const seq2seq = this.seq2seq();
    if (seq2seq) return seq2seq.forward(text, options);
    const out = await this.session.run(this.feeds(this.encode(text, options)), {}, [HIDDEN_LAST]);
    return out[HIDDEN_LAST];
  }

  async release(): Promise<void> {
    await this.seq2seqRunner?.release();
    await this.session.release();
    await this.generatorSession.release();
  }

  private encode(text: string, options: AttentionOptions): Encoded {
    return encodeWithin(this.tokenizer, text, options, {
      maxPositions: this.dims.maxPositions,
      source: this.source,
      vocab: this.internals.vocab,
    });
  }

  /**
   * The standard inputs (family.ts) that this model's graph declares, for tokens at positions `start`…
   * (start > 0: after `start` tokens held in a KV cache; the mask is then `[T, start + T]`).
   */
  private feeds(e: Pick<Encoded, 'ids' | 'typeIds'>, start = 0): Record<string, Feed> {
    const T = e.ids.length;
    const all: Record<string, () => Feed> = {
      [INPUTS.inputIds]: () => ({ type: 'int64', data: BigInt64Array.from(e.ids, BigInt), dims: [T] }),
      [INPUTS.positionIds]: () => ({
        type: 'int64',
        data: BigInt64Array.from({ length: T }, (_, i) => BigInt(start + i)),
        dims: [T],
      }),
      [INPUTS.tokenTypeIds]: () => ({ type: 'int64', data: BigInt64Array.from(e.typeIds, BigInt), dims: [T] }),
      [INPUTS.causalMask]: () => ({ type: 'float32', data: causalMask(T, start), dims: [T, start + T] }),
    };
    const feeds: Record<string, Feed> = {};
    for (const name of this.session.inputNames) {
      const make = all[name];
      if (!make) throw new Error(`graph input ${name} has no feed`);
      feeds[name] = make();
    }
    return feeds;
  }
}

/** BOS and EOS ids from config.json (eos_token_id may be a list). */
function specialIds(config: ModelConfig): { bos: number | null; eos: number[] } {
  const { bos_token_id: bos, eos_token_id: eos } = config.raw;
  return {
    bos: Number.isInteger(bos) ? (bos as number) : null,
    eos: (Array.isArray(eos) ? eos : [eos]).filter((id): id is number => Number.isInteger(id)),
  };
}

/**
 * Rotary models: the order of q/k's head dimensions; grouped-query attention: the kv heads keys come from;
 * sliding windows: each layer's causal window [window − 1, 0].
 */
function rotaryFields(dims: ModelDims): Pick<Attention, 'kvHeads' | 'rotary' | 'layerWindows'> {
  const { kvHeads, rope, windows } = dims as Partial<LlamaConfig>;
  return {
    ...(kvHeads !== undefined && kvHeads !== dims.heads ? { kvHeads } : {}),
    ...(rope ? { rotary: rope } : {}),
    ...(windows?.some((w) => w !== null)
      ? { layerWindows: windows.map((w) => (w === null ? null : ([w - 1, 0] as const))) }
      : {}),
  };
}

/** Families whose scores are not q·kᵀ/√d + mask: the extras that reproduce the attention (core/attention.ts). */
function scoreFields(dims: ModelDims): Pick<Attention, 'scoreScale' | 'attnLogitSoftcapping' | 'layerWindows'> {
  const { scoreScale, attnLogitSoftcapping, layerWindows } = dims;
  return {
    ...(scoreScale !== undefined && scoreScale !== 1 / Math.sqrt(dims.headDim) ? { scoreScale } : {}),
    ...(attnLogitSoftcapping !== undefined ? { attnLogitSoftcapping } : {}),
    ...(layerWindows?.some((w) => w !== null) ? { layerWindows: [...layerWindows] } : {}),
  };
}

/** Whether a built graph outputs score biases (position_bias, per-layer biases) besides probs, q and k. */
/** The stages of an extracting graph (graph/stages.ts): per layer its q, k and probabilities. */
function layerGroups(dims: ModelDims): string[][] {
  return Array.from({ length: dims.layers }, (_, i) => Object.values(outputNames(i)));
}

function isGrouped(session: Runner): session is GroupedRunner {
  return session instanceof SizedSession;
}

function hasBiasOutputs(graph: Uint8Array): boolean {
  const outputs = decodeModel(graph).graph.output;
  return outputs.some((o) => o.name === POSITION_BIAS_OUTPUT || o.name === layerBiasName(0));
}
