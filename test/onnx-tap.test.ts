/**
 * Existing ONNX models (models/onnx-tap.ts): folders in transformers.js layout written here with attnviz's
 * own GraphBuilder.
 *
 * - Golden: bert-tiny's and gpt2-tiny's graphs built without attention outputs (extract: false), as
 *   onnx/model.onnx with the weights as external data (the checkpoint's safetensors copied beside it), must
 *   reproduce every golden case (tokens, attention within 1e-4, q/k/hidden within the golden tolerance).
 * - By hand, with a batch axis and the patterns exporters write: HF BERT's MatMul(q, Transpose(k)) → Div(√d)
 *   → Add(mask) → Softmax, DistilBERT's scale on q, torch SDPA's computed √scale on q and kᵀ, com.microsoft
 *   FusedMatMul, and a GPT-2-style decoder with a KV-cache input, Where(causal) and Add(mask). Each against a
 *   float64 forward pass written in the test, plus softmax(q·kᵀ/√d + mask) = attention.
 * - Errors: fused attention operators, no Softmax, no q·kᵀ, summed products, and the bad inputs every loader
 *   gets (missing folder, files, tokenizer, config, corrupt bytes, empty and long texts).
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, test } from 'vitest';
import { Model } from '../src/models/checkpoint-model.js';
import { loadModel } from '../src/models/load-model.js';
import { generateWith } from '../src/models/model.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { familyFor } from '../src/graph/families.js';
import { readConfig } from '../src/load/config.js';
import { isOnnxSource } from '../src/load/onnx-source.js';
import { findOnnxAttention, OnnxModel } from '../src/models/onnx-tap.js';
import { Weights } from '../src/load/weights.js';
import { describeModel } from '../src/server/models.js';
import {
  expectBad,
  expectMatchesGolden,
  goldenCases,
  goldenModel,
  HAVE_SHARED,
  loadedOnce,
  maxAbsDiff,
  readGoldenCase,
} from './shared.js';
import { attend, causal as causalLogit, softmaxError, splitHeads } from './reference.js';
import { Rng } from './tiny-models.js';

const { onnx } = onnxProto;

const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-onnx-'));
  made.push(dir);
  return dir;
}

/** A folder in transformers.js layout: onnx/<file> = `graph`, config.json, the tokenizer files of a golden model. */
async function onnxFolder(
  graph: Uint8Array,
  config: Record<string, unknown>,
  tokenizerFrom: 'bert-tiny' | 'gpt2-tiny',
  file = 'model.onnx',
): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'onnx'));
  await writeFile(join(dir, 'onnx', file), graph);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    await copyFile(join(goldenModel(tokenizerFrom), f), join(dir, f));
  return dir;
}

/**
 * A golden model's graph as attnviz builds it, without attention outputs, in transformers.js layout: the
 * graph's external-data references name model.safetensors relative to the graph, so it is copied beside it.
 */
async function goldenOnnxFolder(name: 'bert-tiny' | 'gpt2-tiny', file = 'model.onnx'): Promise<string> {
  const src = goldenModel(name);
  const config = await readConfig(src);
  const family = familyFor(config);
  const weights = await Weights.open(src);
  const g = new GraphBuilder(weights);
  family.build(g, weights, family.readConfig(config), { extract: false });
  const dir = await onnxFolder(g.toBytes(), config.raw as Record<string, unknown>, name, file);
  await copyFile(join(src, 'model.safetensors'), join(dir, 'onnx', 'model.safetensors'));
  return dir;
}

async function withModel<T>(source: string, f: (m: OnnxModel) => Promise<T>): Promise<T> {
  const m = (await loadModel(source)) as unknown as OnnxModel;
  try {
    return await f(m);
  } finally {
    await m.release();
  }
}

// ---- golden models as ONNX folders ------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('golden graphs written as onnx/model.onnx', async () => {
  const folders = HAVE_SHARED
    ? { 'bert-tiny': await goldenOnnxFolder('bert-tiny'), 'gpt2-tiny': await goldenOnnxFolder('gpt2-tiny') }
    : null;
  const model = loadedOnce(
    (name: 'bert-tiny' | 'gpt2-tiny') => loadModel(folders![name]) as unknown as Promise<OnnxModel>,
  );

  test('a folder with onnx/ and no safetensors is an ONNX source; the tap finds one attention per layer', async () => {
    expect(isOnnxSource(folders!['bert-tiny'])).toBe(true);
    expect(isOnnxSource(goldenModel('bert-tiny'))).toBe(false);
    const bert = await model('bert-tiny');
    expect(bert).toBeInstanceOf(OnnxModel);
    expect(bert.dims).toEqual({ layers: 3, heads: 4, headDim: 10, hidden: 40, maxPositions: 512 });
    expect(bert.family).toEqual({ modelType: 'bert', causal: false });
    // attnviz's graphs scale the scores by a float32 1/√d after the matmul: q and k are tapped unscaled.
    for (const t of bert.taps) {
      expect(t.keyTransposed).toBe(false);
      expect(t.scaleAt).toEqual(['scores']);
      expect(t.scale).toBeCloseTo(1 / Math.sqrt(10), 7);
    }
    const gpt2 = await model('gpt2-tiny');
    expect(gpt2.dims).toMatchObject({ layers: 2, heads: 4, headDim: 8, maxPositions: 256 });
    expect(gpt2.family.causal).toBe(true);
    expect(bert.weightBytes).toBeGreaterThan(5_000_000);
  });

  const files = goldenCases(['bert-tiny', 'gpt2-tiny']);
  test.each(files.map((f) => [f.split('/').pop()!, f]))('%s', async (_, file) => {
    const golden = await readGoldenCase(file);
    const m = await model(golden.model as 'bert-tiny' | 'gpt2-tiny');
    const a = await m.attention(golden.text, { pair: golden.textPair });
    expectMatchesGolden(a, golden);
    expect(a.model).toEqual({
      source: folders![golden.model as 'bert-tiny'],
      modelType: golden.model === 'bert-tiny' ? 'bert' : 'gpt2',
    });
    expect(softmaxError(a)).toBeLessThan(1e-5);
  });

  test('the app describes an ONNX model like a checkpoint', async () => {
    const info = describeModel('path:x', await model('gpt2-tiny'));
    expect(info).toMatchObject({ modelType: 'gpt2', layers: 2, heads: 4, maxPositions: 256, causal: true });
  });

  test('which file: model.onnx first, else a quantized variant; an .onnx path or `file` picks one', async () => {
    const src = folders!['bert-tiny'];
    const golden = await readGoldenCase(files.find((f) => f.includes('bert-tiny__cat_sat'))!);
    // Only a variant: it is loaded.
    const quantized = await goldenOnnxFolder('bert-tiny', 'model_quantized.onnx');
    await withModel(quantized, async (m) => {
      expect(m.file).toBe(join(quantized, 'onnx', 'model_quantized.onnx'));
      expectMatchesGolden(await m.attention(golden.text), golden);
    });
    // model.onnx beside model_fp16.onnx (here a corrupt one): model.onnx wins; the fp16 file named explicitly fails.
    await writeFile(join(src, 'onnx', 'model_fp16.onnx'), 'not a graph');
    await withModel(src, async (m) => expect(m.file).toBe(join(src, 'onnx', 'model.onnx')));
    await expectBad(
      loadModel(join(src, 'onnx', 'model_fp16.onnx')),
      'model_fp16.onnx',
      /not an ONNX model|cannot load|no graph/,
    );
    await expectBad(OnnxModel.load(src, { file: 'model_fp16.onnx' }), 'model_fp16.onnx');
    // The .onnx path as the source: config and tokenizer come from the folder above onnx/.
    await withModel(join(quantized, 'onnx', 'model_quantized.onnx'), async (m) => expect(m.dir).toBe(quantized));
    const m = await OnnxModel.load(quantized, { file: 'model_quantized.onnx' });
    await m.release();
  });

  test('a folder with both a checkpoint and onnx/ loads the checkpoint', async () => {
    const dir = await goldenOnnxFolder('gpt2-tiny');
    await copyFile(join(goldenModel('gpt2-tiny'), 'model.safetensors'), join(dir, 'model.safetensors'));
    expect(isOnnxSource(dir)).toBe(false);
    const m = await loadModel(dir);
    expect(m).toBeInstanceOf(Model);
    await m.release();
  });

  test('generate and a target text are refused with an AttnvizError', async () => {
    await expectBad(generateWith(await model('gpt2-tiny'), null, { maxNewTokens: 1 }), 'cannot generate');
    await expectBad((await model('bert-tiny')).attention('a', { target: 'b' }), 'no target text');
  });
});

// ---- exporter patterns, by hand ---------------------------------------------------------------------------

const VOCAB = 64,
  D = 8,
  H = 2,
  HD = 4,
  LAYERS = 2;

/** Random weights of a 2-layer, 2-head model small enough to hold in the graph (ids are taken mod 64). */
function randomWeights(seed: number) {
  const rng = new Rng(seed);
  const t = (n: number, std: number) => Float32Array.from({ length: n }, () => std * rng.normal());
  return {
    embed: t(VOCAB * D, 1),
    types: t(2 * D, 1),
    layers: Array.from({ length: LAYERS }, () => ({
      // MatMul weights [in, out] (x·W), as torch exports nn.Linear.
      wq: t(D * D, 0.6),
      bq: t(D, 0.2),
      wk: t(D * D, 0.6),
      bk: t(D, 0.2),
      wv: t(D * D, 0.4),
      bv: t(D, 0.1),
      wo: t(D * D, 0.3),
    })),
  };
}
type RandomWeights = ReturnType<typeof randomWeights>;

type Variant = 'hf-bert' | 'computed-div' | 'scaled-q' | 'sdpa' | 'fused-matmul';

/**
 * An encoder with a batch axis: input_ids, attention_mask, token_type_ids `[batch, sequence]`, activations
 * `[B, T, D]`, per-head q, k, v `[B, H, T, d]`, attention written as `variant` does, last_hidden_state.
 * Softmax nodes are named as the HF exporter names them (`/encoder/layer.N/attention/self/Softmax`), with
 * `layerNames` giving N per layer.
 */
function encoderGraph(w: RandomWeights, variant: Variant, layerNames: number[] = [0, 1]): Uint8Array {
  const g = new GraphBuilder(null as unknown as Weights); // every weight is a constant in the graph
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'sequence_length']);
  const types = g.input('token_type_ids', 'int64', ['batch_size', 'sequence_length']);
  const gather = (table: Float32Array, rows: number, index: string) =>
    g.op('Gather', [g.floats(table, [rows, D]), index]);
  let x = g.add(gather(w.embed, VOCAB, g.op('Mod', [ids, g.ints([VOCAB])])), gather(w.types, 2, types));
  // (1 - mask) · -10000 as [B, 1, 1, T], BERT's extended attention mask.
  const m = g.op('Unsqueeze', [
    g.op('Mul', [g.op('Sub', [g.scalar(1), g.op('Cast', [mask], { to: 1 })]), g.scalar(-10000)]),
    g.ints([1, 2]),
  ]);
  const heads = (v: string) => g.op('Transpose', [g.op('Reshape', [v, g.ints([0, 0, H, HD])])], { perm: [0, 2, 1, 3] });
  for (const l of w.layers) {
    const proj = (wt: Float32Array, b: Float32Array) =>
      heads(g.add(g.op('MatMul', [x, g.floats(wt, [D, D])]), g.floats(b, [D])));
    const q = proj(l.wq, l.bq),
      k = proj(l.wk, l.bk),
      v = proj(l.wv, l.bv);
    const kT = () => g.op('Transpose', [k], { perm: [0, 1, 3, 2] });
    let scores: string;
    switch (variant) {
      case 'hf-bert':
        scores = g.op('Div', [g.op('MatMul', [q, kT()]), g.scalar(Math.sqrt(HD))]);
        break;
      case 'computed-div': {
        // √d computed from q's shape in the graph (a traced `/ math.sqrt(q.size(-1))`): read on each run.
        const last = g.op('Cast', [g.op('Slice', [g.op('Shape', [q]), g.ints([-1]), g.ints([2 ** 31])])], { to: 1 });
        scores = g.op('Div', [g.op('MatMul', [q, kT()]), g.op('Sqrt', [last])]);
        break;
      }
      case 'scaled-q':
        scores = g.op('MatMul', [g.op('Div', [q, g.scalar(Math.sqrt(HD))]), kT()]);
        break;
      case 'sdpa': {
        // torch's scaled_dot_product_attention export: scale = 1/√(q.shape[-1]) computed in the graph, √scale on q
        // and kᵀ.
        const last = g.op('Cast', [g.op('Slice', [g.op('Shape', [q]), g.ints([-1]), g.ints([2 ** 31])])], { to: 1 });
        const root = g.op('Sqrt', [g.op('Div', [g.scalar(1), g.op('Sqrt', [last])])]);
        scores = g.op('MatMul', [g.op('Mul', [q, root]), g.op('Mul', [kT(), root])]);
        break;
      }
      case 'fused-matmul':
        scores = g.op('FusedMatMul', [q, k], { alpha: { float: 1 / Math.sqrt(HD) }, transB: 1 });
        break;
    }
    const probs = g.op('Softmax', [g.add(scores, m)], { axis: -1 });
    const context = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }),
      g.ints([0, 0, D]),
    ]);
    x = g.add(x, g.op('MatMul', [context, g.floats(l.wo, [D, D])]));
  }
  g.output(g.op('Identity', [x], {}, 'last_hidden_state'), ['batch_size', 'sequence_length', D]);
  return patch(g.toBytes(), (model) => {
    let layer = 0;
    for (const n of model.graph!.node!) {
      if (n.opType === 'Softmax') n.name = `/encoder/layer.${layerNames[layer++]}/attention/self/Softmax`;
      if (n.opType === 'FusedMatMul') n.domain = 'com.microsoft';
    }
    if (variant === 'fused-matmul') model.opsetImport!.push({ domain: 'com.microsoft', version: 1 });
  });
}

/**
 * A GPT-2-style decoder as exported with a KV cache: input_ids, attention_mask `[B, past + T]`,
 * position_ids, past_key_values.N.key/value `[B, H, past, d]`; k and v concatenated after the past;
 * MatMul(q, Transpose(k)) → Div(√d) → Where(causal, ·, -1e9) → Add(mask) → Softmax; logits and present.*
 * out.
 */
function decoderGraph(w: RandomWeights): Uint8Array {
  const g = new GraphBuilder(null as unknown as Weights);
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'past_sequence_length + 1']);
  const positions = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  let x = g.add(
    g.op('Gather', [g.floats(w.embed, [VOCAB, D]), g.op('Mod', [ids, g.ints([VOCAB])])]),
    g.op('Gather', [g.floats(w.types, [2, D]), g.op('Mod', [positions, g.ints([2])])]),
  );
  const m = g.op('Unsqueeze', [
    g.op('Mul', [g.op('Sub', [g.scalar(1), g.op('Cast', [mask], { to: 1 })]), g.scalar(-10000)]),
    g.ints([1, 2]),
  ]);
  const heads = (v: string) => g.op('Transpose', [g.op('Reshape', [v, g.ints([0, 0, H, HD])])], { perm: [0, 2, 1, 3] });
  w.layers.forEach((l, i) => {
    const pastK = g.input(`past_key_values.${i}.key`, 'float', ['batch_size', H, 'past_sequence_length', HD]);
    const pastV = g.input(`past_key_values.${i}.value`, 'float', ['batch_size', H, 'past_sequence_length', HD]);
    const proj = (wt: Float32Array, b: Float32Array) =>
      heads(g.add(g.op('MatMul', [x, g.floats(wt, [D, D])]), g.floats(b, [D])));
    const q = proj(l.wq, l.bq);
    const k = g.op('Concat', [pastK, proj(l.wk, l.bk)], { axis: 2 }, `present.${i}.key`);
    const v = g.op('Concat', [pastV, proj(l.wv, l.bv)], { axis: 2 }, `present.${i}.value`);
    g.output(k, ['batch_size', H, 'total_sequence_length', HD]);
    g.output(v, ['batch_size', H, 'total_sequence_length', HD]);
    const scores = g.op('Div', [
      g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]),
      g.scalar(Math.sqrt(HD)),
    ]);
    // Causal: keep j ≤ i + past (Trilu, lower part, offset past = S - T).
    const tLen = g.op('Slice', [g.op('Shape', [q]), g.ints([2]), g.ints([3])]);
    const sLen = g.op('Slice', [g.op('Shape', [k]), g.ints([2]), g.ints([3])]);
    const ones = g.op('Expand', [g.scalar(1), g.op('Concat', [tLen, sLen], { axis: 0 })]);
    const offset = g.op('Squeeze', [g.op('Sub', [sLen, tLen]), g.ints([0])]);
    const causal = g.op('Cast', [g.op('Trilu', [ones, offset], { upper: 0 })], { to: 9 });
    const probs = g.op('Softmax', [g.add(g.op('Where', [causal, scores, g.scalar(-1e9)]), m)], { axis: -1 });
    const context = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }),
      g.ints([0, 0, D]),
    ]);
    x = g.add(x, g.op('MatMul', [context, g.floats(l.wo, [D, D])]));
  });
  const logits = g.op(
    'MatMul',
    [x, g.op('Transpose', [g.floats(w.embed, [VOCAB, D])], { perm: [1, 0] })],
    {},
    'logits',
  );
  g.output(logits, ['batch_size', 'sequence_length', VOCAB]);
  return g.toBytes();
}

function patch(bytes: Uint8Array, f: (m: onnxProto.onnx.ModelProto) => void): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  f(model);
  return onnx.ModelProto.encode(model).finish();
}

/** The float64 forward pass of both graphs: per layer q, k `[H][T][d]` (unscaled) and the probabilities. */
function reference(w: RandomWeights, ids: number[], typeIds: number[], causal: boolean) {
  const T = ids.length;
  let x = ids.map((id, t) =>
    Float64Array.from(
      { length: D },
      (_, j) => w.embed[(id % VOCAB) * D + j] + w.types[(causal ? t % 2 : typeIds[t]) * D + j],
    ),
  );
  const matmul = (a: Float64Array[], wt: Float32Array, b?: Float32Array) =>
    a.map((row) =>
      Float64Array.from({ length: D }, (_, o) => {
        let s = b ? b[o] : 0;
        for (let i = 0; i < D; i++) s += row[i] * wt[i * D + o];
        return s;
      }),
    );
  const out = { q: [] as number[], k: [] as number[], probs: [] as number[] };
  for (const l of w.layers) {
    const q = splitHeads(matmul(x, l.wq, l.bq), H, HD),
      k = splitHeads(matmul(x, l.wk, l.bk), H, HD),
      v = splitHeads(matmul(x, l.wv, l.bv), H, HD);
    const { probs, context } = attend(q, k, v, 1 / Math.sqrt(HD), causal ? causalLogit : undefined);
    for (let h = 0; h < H; h++) {
      for (const row of probs[h]) out.probs.push(...row);
      for (let t = 0; t < T; t++) {
        out.q.push(...q[h][t]);
        out.k.push(...k[h][t]);
      }
    }
    const o = matmul(context, l.wo);
    x = x.map((row, t) => row.map((val, j) => val + o[t][j]));
  }
  return { ...out, hidden: x.flatMap((row) => [...row]) };
}

const BERT_CONFIG = {
  model_type: 'bert',
  architectures: ['BertModel'],
  hidden_size: D,
  num_attention_heads: H,
  num_hidden_layers: LAYERS,
  max_position_embeddings: 32,
};
const GPT2_CONFIG = {
  model_type: 'gpt2',
  architectures: ['GPT2LMHeadModel'],
  n_embd: D,
  n_head: H,
  n_layer: LAYERS,
  n_positions: 64,
};

describe.skipIf(!HAVE_SHARED)('exporter patterns with a batch axis', () => {
  const w = randomWeights(7);

  test.each(['hf-bert', 'computed-div', 'scaled-q', 'sdpa', 'fused-matmul'] as const)(
    'encoder, %s: attention, q, k and hidden against a float64 forward pass',
    async (variant) => {
      const dir = await onnxFolder(encoderGraph(w, variant), BERT_CONFIG, 'bert-tiny');
      await withModel(dir, async (m) => {
        expect(m.dims).toEqual({ layers: 2, heads: 2, headDim: 4, hidden: 8, maxPositions: 32 });
        const at = m.taps.map((t) => t.scaleAt);
        expect(at).toEqual(
          Array(2).fill(
            {
              'hf-bert': ['scores'],
              'computed-div': ['scores'],
              'scaled-q': ['query'],
              sdpa: ['query', 'key'],
              'fused-matmul': ['matmul'],
            }[variant],
          ),
        );
        // SDPA: q and kᵀ are tapped after their computed √scale (not a constant), so s = 1 and c = d^¼ undoes it.
        if (variant === 'sdpa') for (const t of m.taps) expect([t.scale, t.scaleTensors]).toEqual([1, []]);
        if (variant === 'computed-div')
          for (const t of m.taps) expect([t.scale, t.scaleTensors.map((f) => f.power)]).toEqual([1, [-1]]);
        // kᵀ is tapped as such only where a computed scale sits between the Transpose and the MatMul (SDPA).
        expect(m.taps.map((t) => t.keyTransposed)).toEqual(Array(2).fill(variant === 'sdpa'));
        const a = await m.attention('The cat sat on the mat.', { pair: 'A dog.' });
        expect(a.sentenceBStart).toBeGreaterThan(0);
        const ids = a.inputIds!;
        const typeIds = ids.map((_, i) => (i >= a.sentenceBStart! ? 1 : 0));
        const ref = reference(w, ids, typeIds, false);
        expect(a.attention.dims).toEqual([2, 2, ids.length, ids.length]);
        expect(maxAbsDiff(a.attention.data, ref.probs)).toBeLessThan(1e-5);
        expect(maxAbsDiff(a.query!.data, ref.q)).toBeLessThan(1e-5);
        expect(maxAbsDiff(a.key!.data, ref.k)).toBeLessThan(1e-5);
        expect(maxAbsDiff(a.hiddenLast!.data, ref.hidden)).toBeLessThan(1e-4);
        expect(softmaxError(a)).toBeLessThan(1e-5);
      });
    },
  );

  test('layers are numbered by the layer index in the Softmax names when every one has a distinct index', async () => {
    const swapped = await onnxFolder(encoderGraph(w, 'hf-bert', [1, 0]), BERT_CONFIG, 'bert-tiny');
    const plain = await onnxFolder(encoderGraph(w, 'hf-bert'), BERT_CONFIG, 'bert-tiny');
    const [a, b] = await Promise.all([
      withModel(swapped, (m) => m.attention('one two three')),
      withModel(plain, (m) => m.attention('one two three')),
    ]);
    const half = a.attention.data.length / 2;
    expect(a.attention.data.subarray(0, half)).toEqual(b.attention.data.subarray(half));
    expect(a.attention.data.subarray(half)).toEqual(b.attention.data.subarray(0, half));
    // Names without a layer index (or two alike): topological order.
    const model = onnx.ModelProto.decode(encoderGraph(w, 'hf-bert', [3, 3]));
    expect(findOnnxAttention(model, 'x').map((t) => t.node)).toEqual([
      '/encoder/layer.3/attention/self/Softmax',
      '/encoder/layer.3/attention/self/Softmax',
    ]);
  });

  test('decoder with a KV-cache input: empty past, causal zeros, against a float64 forward pass', async () => {
    const dir = await onnxFolder(decoderGraph(w), GPT2_CONFIG, 'gpt2-tiny');
    await withModel(dir, async (m) => {
      expect(m.family).toEqual({ modelType: 'gpt2', causal: true });
      const a = await m.attention('Hello there, general Kenobi');
      const ref = reference(w, a.inputIds!, [], true);
      expect(maxAbsDiff(a.attention.data, ref.probs)).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.query!.data, ref.q)).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.key!.data, ref.k)).toBeLessThan(1e-5);
      const T = a.tokens.length;
      for (let lh = 0; lh < 4; lh++)
        for (let i = 0; i < T; i++)
          for (let j = i + 1; j < T; j++) expect(a.attention.data[(lh * T + i) * T + j]).toBe(0);
      expect(softmaxError(a)).toBeLessThan(1e-5);
    });
  });

  test('a float16 cache input is refused by name', async () => {
    const bytes = patch(decoderGraph(w), (model) => {
      // As fp16 exports declare it: a float16 input (cast here, so that the graph stays valid).
      model.graph!.input!.find((i) => i.name === 'past_key_values.0.key')!.type!.tensorType!.elemType =
        onnx.TensorProto.DataType.FLOAT16;
      model.graph!.node!.find((n) => n.input!.includes('past_key_values.0.key'))!.input![0] = 'past_as_float';
      model.graph!.node!.unshift({
        opType: 'Cast',
        input: ['past_key_values.0.key'],
        output: ['past_as_float'],
        attribute: [{ name: 'to', type: 2, i: 1 }],
      });
    });
    const dir = await onnxFolder(bytes, GPT2_CONFIG, 'gpt2-tiny');
    await expectBad(loadModel(dir), 'past_key_values.0.key', 'FLOAT16', 'float32');
  });

  test('an input attnviz cannot feed is named', async () => {
    const bytes = patch(encoderGraph(w, 'hf-bert'), (model) => {
      model.graph!.input!.push({ name: 'pixel_values', type: { tensorType: { elemType: 1 } } });
    });
    await expectBad(loadModel(await onnxFolder(bytes, BERT_CONFIG, 'bert-tiny')), 'pixel_values');
  });
});

// ---- graphs that are refused ------------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('graphs without readable attention', () => {
  const w = randomWeights(3);

  test.each([
    'Attention',
    'MultiHeadAttention',
    'GroupQueryAttention',
    'PackedAttention',
    'DecoderMaskedMultiHeadAttention',
  ])('a com.microsoft %s node: the error names the operator and the node', async (op) => {
    const bytes = patch(encoderGraph(w, 'hf-bert'), (model) => {
      model.graph!.node!.splice(3, 0, {
        opType: op,
        domain: 'com.microsoft',
        name: `/encoder/layer.0/attention/${op}`,
        input: ['x'],
        output: ['y'],
      });
      model.opsetImport!.push({ domain: 'com.microsoft', version: 1 });
    });
    const message = await expectBad(
      loadModel(await onnxFolder(bytes, BERT_CONFIG, 'bert-tiny')),
      `com.microsoft ${op}`,
      `/encoder/layer.0/attention/${op}`,
      'fused',
    );
    expect(message).toMatch(/model\.onnx/);
  });

  test('no Softmax at all', async () => {
    const g = new GraphBuilder(null as unknown as Weights);
    g.output(
      g.op('Cast', [g.input('input_ids', 'int64', ['batch_size', 'sequence_length'])], { to: 1 }, 'last_hidden_state'),
      ['batch_size', 'sequence_length'],
    );
    await expectBad(loadModel(await onnxFolder(g.toBytes(), BERT_CONFIG, 'bert-tiny')), 'no Softmax');
  });

  test('a Softmax over a product with a weight (a classifier head) is not attention', async () => {
    const g = new GraphBuilder(null as unknown as Weights);
    const x = g.op('Gather', [
      g.floats(w.embed, [VOCAB, D]),
      g.op('Mod', [g.input('input_ids', 'int64', ['batch_size', 'sequence_length']), g.ints([VOCAB])]),
    ]);
    g.output(g.op('Softmax', [g.op('MatMul', [x, g.floats(w.layers[0].wq, [D, D])])], { axis: -1 }, 'logits'), [
      'batch_size',
      'sequence_length',
      D,
    ]);
    await expectBad(
      loadModel(await onnxFolder(g.toBytes(), BERT_CONFIG, 'bert-tiny')),
      '1 Softmax node',
      'none fed by a product of two activations',
    );
  });

  test('scores that sum two products are refused', () => {
    const g = new GraphBuilder(null as unknown as Weights);
    const a = g.input('a', 'float', [2, 3, 3]),
      b = g.input('b', 'float', [2, 3, 3]);
    g.output(g.op('Softmax', [g.add(g.op('MatMul', [a, b]), g.op('MatMul', [b, a]))], { axis: -1 }, 'p'), [2, 3, 3]);
    expect(() => findOnnxAttention(onnx.ModelProto.decode(g.toBytes()), 'g.onnx')).toThrow(/sum of 2 products/);
  });

  test('attention inside an If subgraph (a merged decoder)', () => {
    const body = new GraphBuilder(null as unknown as Weights);
    body.output(body.op('Softmax', [body.op('MatMul', ['a', 'b'])], { axis: -1 }, 'p'), [2, 3, 3]);
    const inner = onnx.ModelProto.decode(body.toBytes()).graph!;
    const model = {
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        node: [
          {
            opType: 'If',
            input: ['c'],
            output: ['p'],
            attribute: [
              { name: 'then_branch', g: inner },
              { name: 'else_branch', g: inner },
            ],
          },
        ],
      },
    };
    expect(() => findOnnxAttention(model, 'decoder_model_merged.onnx')).toThrow(/If\/Loop subgraphs/);
  });
});

// ---- bad inputs -------------------------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('bad inputs', async () => {
  const good = HAVE_SHARED ? await goldenOnnxFolder('bert-tiny') : '';
  const copyOf = async (omit: string[] = []) => {
    const dir = await goldenOnnxFolder('bert-tiny');
    await Promise.all(omit.map((f) => rm(join(dir, f), { recursive: true, force: true })));
    return dir;
  };

  test('missing onnx/ folder', async () => {
    const dir = await copyOf(['onnx']);
    await expectBad(OnnxModel.load(dir), 'no onnx/ folder', 'onnx/model.onnx');
    // Through loadModel the folder is not an ONNX source: it is a checkpoint folder without weights.
    await expectBad(loadModel(dir), 'no weights');
  });

  test('an onnx/ folder without a model file lists what it looked for and what it found', async () => {
    const dir = await copyOf();
    await rm(join(dir, 'onnx', 'model.onnx'));
    await expectBad(loadModel(dir), 'holds none of model.onnx, model_fp16.onnx, model_quantized.onnx');
    await writeFile(join(dir, 'onnx', 'decoder_model_merged.onnx'), '');
    await expectBad(loadModel(dir), 'decoder_model_merged.onnx', "pass one's path");
    await expectBad(OnnxModel.load(dir, { file: '../config.json' }), 'not the name of an .onnx file');
  });

  test('corrupt .onnx bytes', async () => {
    const dir = await copyOf();
    await writeFile(join(dir, 'onnx', 'model.onnx'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]));
    await expectBad(loadModel(dir), 'model.onnx', /not an ONNX model|cannot load|no graph/);
    await writeFile(join(dir, 'onnx', 'model.onnx'), '');
    await expectBad(loadModel(dir), 'model.onnx', 'no graph');
  });

  test('a truncated .onnx file', async () => {
    const dir = await copyOf();
    const bytes = await readFile(join(good, 'onnx', 'model.onnx'));
    await writeFile(join(dir, 'onnx', 'model.onnx'), bytes.subarray(0, bytes.length >> 1));
    await expectBad(loadModel(dir), 'model.onnx');
  });

  test('external data missing beside the graph', async () => {
    const dir = await copyOf(['onnx/model.safetensors']);
    await expectBad(loadModel(dir), 'onnxruntime cannot load the graph');
  });

  test('missing tokenizer', async () => {
    const dir = await copyOf(['tokenizer.json']);
    await expectBad(loadModel(dir), /vocab\.txt|tokenizer/);
  });

  test('tokenizer.json that is not JSON', async () => {
    const dir = await copyOf();
    await writeFile(join(dir, 'tokenizer.json'), '{');
    await expectBad(loadModel(dir), 'tokenizer.json', 'not valid JSON');
  });

  test('missing or broken config.json', async () => {
    await expectBad(loadModel(await copyOf(['config.json'])), 'no config.json');
    const dir = await copyOf();
    await writeFile(join(dir, 'config.json'), '[1]');
    await expectBad(loadModel(dir), 'config.json', 'JSON object');
  });

  test('empty text, too long a text, truncation; the model still works afterwards', async () => {
    await withModel(good, async (m) => {
      await expectBad(m.attention(''), 'empty');
      await expectBad(m.attention('word '.repeat(600)), '512 positions', 'truncate');
      const a = await m.attention('word '.repeat(600), { truncate: true });
      expect(a.tokens.length).toBe(512);
      expect(a.tokens[511]).toBe('[SEP]');
      const golden = await readGoldenCase(goldenCases(['bert-tiny']).find((f) => f.includes('__fox'))!);
      expectMatchesGolden(await m.attention(golden.text), golden);
    });
  });

  test('a released model refuses to run', async () => {
    const m = await OnnxModel.load(good);
    await m.release();
    await expectBad(m.attention('x'), 'released');
  });
});
