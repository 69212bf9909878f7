/**
 * The encoder families besides BERT. RoBERTa is checked against the golden cases (an independent
 * reference, ../shared/golden). DistilBERT, ALBERT and ELECTRA have no golden data yet: they run on tiny
 * random checkpoints (test/tiny-models.ts) and are checked for the invariants, against a float64 forward
 * pass written in this file from transformers' modeling_{distilbert,albert,electra}.py, for their own
 * structure (DistilBERT has no token types, ALBERT stores its shared layer once, ELECTRA projects its
 * embeddings), and for one-line errors on bad inputs.
 */
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { attentionLogit, type Attention } from '../src/core/attention.js';
import { logBucketPosition } from '../src/graph/deberta-v2.js';
import { Model, type LoadOptions } from '../src/models/checkpoint-model.js';
import { loadModel } from '../src/models/load-model.js';
import { DirectSession, spareBytes, sparesBack } from '../src/runtime/ort-direct.js';
import { deriveCheckpoint, removeCheckpoint, type DeriveOptions } from './checkpoints.js';
import {
  expectMatchesGolden,
  goldenCases,
  goldenModel,
  HAVE_SHARED,
  maxAbs,
  maxAbsDiff,
  readGoldenCase,
  SHARED,
} from './shared.js';
import {
  activation,
  addRows,
  attend,
  gather,
  layerNorm,
  linear,
  rope,
  softmaxError,
  splitHeads,
  type Rows,
} from './reference.js';
import {
  expectBad,
  expectInvariants,
  expectMatchesReference,
  graphOf,
  removeTinyModels,
  Rng,
  TinyWeights,
  writeTinyModel,
  type Reference,
} from './tiny-models.js';

const TEXT = 'The cat sat on the mat; the dog, unimpressed, watched it.';
const PAIR = 'A second sentence.';

const loaded: Model[] = [];
const derived: string[] = [];
async function open(dir: string, options?: LoadOptions): Promise<Model> {
  const m = await Model.load(dir, options);
  loaded.push(m);
  return m;
}
async function derive(model: string, options: DeriveOptions): Promise<string> {
  const dir = await deriveCheckpoint(goldenModel(model), options);
  derived.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(loaded.splice(0).map((m) => m.release()));
  await Promise.all(derived.splice(0).map(removeCheckpoint));
  await removeTinyModels();
});

const words = (n: number) => Array.from({ length: n }, () => 'the').join(' ');

// ---- RoBERTa: golden ---------------------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('RoBERTa: golden cases (roberta-tiny)', () => {
  const files = goldenCases(['roberta-tiny']);
  let model: Promise<Model> | undefined;
  const roberta = () => (model ??= open(goldenModel('roberta-tiny')));
  const caseFile = (input: string) => join(SHARED, 'golden', 'cases', `roberta-tiny__${input}.safetensors`);

  test('there are cases', () => {
    expect(files.length).toBeGreaterThanOrEqual(9);
  });

  test.each(files.map((f) => [f.split('/').pop()!, f]))('%s', async (_, file) => {
    const golden = await readGoldenCase(file);
    const a = await (await roberta()).attention(golden.text, { pair: golden.textPair });
    expectMatchesGolden(a, golden);
  });

  test('invariants on a pair of our own: <s> A </s></s> B </s>, one token type', async () => {
    const m = await roberta();
    const a = await m.attention(TEXT, { pair: PAIR });
    expectInvariants(a, m.dims);
    const b = a.sentenceBStart!;
    expect([a.tokens[0], a.tokens[b - 2], a.tokens[b - 1], a.tokens.at(-1)]).toEqual(['<s>', '</s>', '</s>', '</s>']);
    expect(m.tokenizer.encode(TEXT, PAIR).typeIds.every((t) => t === 0)).toBe(true);
  });

  test('positions start at padding_idx + 1: 514 rows give 512 tokens; 513 is an error', async () => {
    const m = await roberta();
    expect(m.dims.maxPositions).toBe(512);
    expect((await m.attention(words(510))).tokens).toHaveLength(512);
    await expectBad(m.attention(words(511)), /text is 513 tokens/, /at most 512 positions/);
  });

  test('a checkpoint without the roberta. prefix and without lm_head.* gives the same numbers', async () => {
    const dir = await derive('roberta-tiny', {
      rename: (n) => (n.startsWith('lm_head.') ? null : n.replace(/^roberta\./, '')),
    });
    const golden = await readGoldenCase(caseFile('cat_pair'));
    const m = await open(dir);
    expectMatchesGolden(await m.attention(golden.text, { pair: golden.textPair }), golden);
  });

  test('bad inputs: a config field missing or invalid, a tensor missing or of the wrong shape', async () => {
    // An absent field takes RobertaConfig's default (12 heads), as in transformers: 32 is not divisible by it.
    await expectBad(
      Model.load(await derive('roberta-tiny', { config: { num_attention_heads: undefined } })),
      /config\.json/,
      /hidden size 32 is not divisible by 12 heads/,
    );
    await expectBad(
      loadModel(await derive('roberta-tiny', { config: { num_attention_heads: 'four' } })),
      /field "num_attention_heads" must be an integer from 1 to 16777216, got "four"/,
    );
    await expectBad(
      Model.load(await derive('roberta-tiny', { config: { pad_token_id: 600 } })),
      /pad_token_id 600 leaves no positions/,
    );
    await expectBad(
      Model.load(await derive('roberta-tiny', { config: { position_embedding_type: 'relative_key' } })),
      /"position_embedding_type" is "relative_key"; supported: absolute/,
    );
    await expectBad(
      Model.load(
        await derive('roberta-tiny', {
          rename: (n) => (n === 'roberta.encoder.layer.1.attention.self.key.bias' ? null : n),
        }),
      ),
      /checkpoint is missing tensor "roberta\.encoder\.layer\.1\.attention\.self\.key\.bias"/,
    );
    await expectBad(
      Model.load(await derive('roberta-tiny', { config: { max_position_embeddings: 600 } })),
      /tensor "roberta\.embeddings\.position_embeddings\.weight" has shape \[514, 32\]; the config implies \[600, 32\]/,
    );
  });
});

// ---- tiny random encoders ----------------------------------------------------------------------------------

/** bert-tiny's WordPiece vocabulary (its tokenizer.json is copied in), hidden 16, 2 heads of 8. */
const V = 30522,
  D = 16,
  H = 2,
  d = 8,
  FF = 32,
  E = 8,
  P = 64;
/** Peaked attention (q/k as in the golden models: N(0, 2/D)) so a wiring mistake moves it visibly. */
const STD = { embed: 1, qk: Math.sqrt(2 / D), out: 0.3, ff1: 2 / Math.sqrt(D), ff2: 0.5, project: 1 / Math.sqrt(E) };

interface LayerNames {
  q: string;
  k: string;
  v: string;
  o: string;
  ln1: string;
  ff1: string;
  ff2: string;
  ln2: string;
}

/** Random weights for one post-norm layer under `n`'s names. */
function addLayer(w: TinyWeights, n: LayerNames): void {
  w.linear(n.q, D, D, STD.qk);
  w.linear(n.k, D, D, STD.qk);
  w.linear(n.v, D, D, STD.out);
  w.linear(n.o, D, D, STD.out);
  w.layerNorm(n.ln1, D);
  w.linear(n.ff1, D, FF, STD.ff1);
  w.linear(n.ff2, FF, D, STD.ff2);
  w.layerNorm(n.ln2, D);
}

/** One BERT-style post-norm layer in float64: LN(x + attn(x)), then LN(a + ffn(a)); q, k, probs go to `ref`. */
function postNormLayer(w: TinyWeights, x: Rows, n: LayerNames, act: string, eps: number, ref: Reference): Rows {
  const lin = (y: Rows, name: string, nOut: number) => linear(y, w.get(`${name}.weight`), w.get(`${name}.bias`), nOut);
  const ln = (y: Rows, name: string) => layerNorm(y, w.get(`${name}.weight`), w.get(`${name}.bias`), eps);
  const q = splitHeads(lin(x, n.q, D), H, d),
    k = splitHeads(lin(x, n.k, D), H, d),
    v = splitHeads(lin(x, n.v, D), H, d);
  const { probs, context } = attend(q, k, v, 1 / Math.sqrt(d));
  ref.q.push(q);
  ref.k.push(k);
  ref.probs.push(probs);
  const a = ln(addRows(x, lin(context, n.o, D)), n.ln1);
  return ln(addRows(lin(activation(lin(a, n.ff1, FF), act), n.ff2, D), a), n.ln2);
}

const bertNames = (l: string): LayerNames => ({
  q: `${l}.attention.self.query`,
  k: `${l}.attention.self.key`,
  v: `${l}.attention.self.value`,
  o: `${l}.attention.output.dense`,
  ln1: `${l}.attention.output.LayerNorm`,
  ff1: `${l}.intermediate.dense`,
  ff2: `${l}.output.dense`,
  ln2: `${l}.output.LayerNorm`,
});
const distilNames = (l: string): LayerNames => ({
  q: `${l}.attention.q_lin`,
  k: `${l}.attention.k_lin`,
  v: `${l}.attention.v_lin`,
  o: `${l}.attention.out_lin`,
  ln1: `${l}.sa_layer_norm`,
  ff1: `${l}.ffn.lin1`,
  ff2: `${l}.ffn.lin2`,
  ln2: `${l}.output_layer_norm`,
});
const albertNames = (l: string): LayerNames => ({
  q: `${l}.attention.query`,
  k: `${l}.attention.key`,
  v: `${l}.attention.value`,
  o: `${l}.attention.dense`,
  ln1: `${l}.attention.LayerNorm`,
  ff1: `${l}.ffn`,
  ff2: `${l}.ffn_output`,
  ln2: `${l}.full_layer_layer_norm`,
});

/** word + position (+ token type) embeddings, LayerNorm'd, of width `width` (positions 0..T-1). */
function embeddings(
  w: TinyWeights,
  p: string,
  width: number,
  ids: readonly number[],
  types: readonly number[] | null,
  eps: number,
): Rows {
  const rows = [
    gather(w.get(`${p}embeddings.word_embeddings.weight`), width, ids),
    gather(
      w.get(`${p}embeddings.position_embeddings.weight`),
      width,
      ids.map((_, i) => i),
    ),
  ];
  if (types) rows.push(gather(w.get(`${p}embeddings.token_type_embeddings.weight`), width, types));
  return layerNorm(
    addRows(...rows),
    w.get(`${p}embeddings.LayerNorm.weight`),
    w.get(`${p}embeddings.LayerNorm.bias`),
    eps,
  );
}

const emptyReference = (): Reference => ({ q: [], k: [], probs: [], hidden: [] });

interface TinyEncoder {
  name: string;
  prefix: string;
  config: Record<string, unknown>;
  weights(config: Record<string, unknown>, seed: number): TinyWeights;
  reference(
    w: TinyWeights,
    config: Record<string, unknown>,
    ids: readonly number[],
    types: readonly number[],
  ): Reference;
}

const DISTILBERT: TinyEncoder = {
  name: 'DistilBERT',
  prefix: 'distilbert.',
  config: {
    architectures: ['DistilBertForMaskedLM'],
    model_type: 'distilbert',
    vocab_size: V,
    dim: D,
    n_layers: 2,
    n_heads: H,
    hidden_dim: FF,
    activation: 'gelu',
    max_position_embeddings: P,
    sinusoidal_pos_embds: false,
    dropout: 0.1,
    attention_dropout: 0.1,
    pad_token_id: 0,
  },
  weights(config, seed) {
    const w = new TinyWeights(new Rng(seed));
    w.add('distilbert.embeddings.word_embeddings.weight', [V, D], STD.embed);
    w.add('distilbert.embeddings.position_embeddings.weight', [P, D], STD.embed);
    w.layerNorm('distilbert.embeddings.LayerNorm', D);
    for (let i = 0; i < (config.n_layers as number); i++) addLayer(w, distilNames(`distilbert.transformer.layer.${i}`));
    // The masked-LM head, ignored (vocab_projector.weight is tied to the word embeddings and absent).
    w.linear('vocab_transform', D, D, 0.2);
    w.layerNorm('vocab_layer_norm', D);
    w.add('vocab_projector.bias', [V], 0.05);
    return w;
  },
  reference(w, config, ids) {
    const ref = emptyReference();
    let x = embeddings(w, 'distilbert.', D, ids, null, 1e-12);
    for (let i = 0; i < (config.n_layers as number); i++)
      x = postNormLayer(
        w,
        x,
        distilNames(`distilbert.transformer.layer.${i}`),
        config.activation as string,
        1e-12,
        ref,
      );
    ref.hidden = x;
    return ref;
  },
};

const ALBERT_CONFIG = {
  architectures: ['AlbertForMaskedLM'],
  model_type: 'albert',
  vocab_size: V,
  embedding_size: E,
  hidden_size: D,
  num_hidden_layers: 3,
  num_hidden_groups: 1,
  inner_group_num: 1,
  num_attention_heads: H,
  intermediate_size: FF,
  hidden_act: 'gelu_new',
  max_position_embeddings: P,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  pad_token_id: 0,
  position_embedding_type: 'absolute',
};
const albertLayer = (group: number) => `albert.encoder.albert_layer_groups.${group}.albert_layers.0`;

const ALBERT: TinyEncoder = {
  name: 'ALBERT',
  prefix: 'albert.',
  config: ALBERT_CONFIG,
  weights(config, seed) {
    const w = new TinyWeights(new Rng(seed));
    w.add('albert.embeddings.word_embeddings.weight', [V, E], STD.embed);
    w.add('albert.embeddings.position_embeddings.weight', [P, E], STD.embed);
    w.add('albert.embeddings.token_type_embeddings.weight', [2, E], STD.embed);
    w.layerNorm('albert.embeddings.LayerNorm', E);
    w.linear('albert.encoder.embedding_hidden_mapping_in', E, D, STD.project);
    for (let g = 0; g < (config.num_hidden_groups as number); g++) addLayer(w, albertNames(albertLayer(g)));
    // Pooler and heads, ignored.
    w.linear('albert.pooler', D, D, 0.2);
    w.linear('predictions.dense', D, E, 0.2);
    w.add('predictions.bias', [V], 0.05);
    w.linear('sop_classifier.classifier', D, 2, 0.2);
    return w;
  },
  reference(w, config, ids, types) {
    const ref = emptyReference();
    const eps = config.layer_norm_eps as number,
      L = config.num_hidden_layers as number,
      G = config.num_hidden_groups as number;
    let x = linear(
      embeddings(w, 'albert.', E, ids, types, eps),
      w.get('albert.encoder.embedding_hidden_mapping_in.weight'),
      w.get('albert.encoder.embedding_hidden_mapping_in.bias'),
      D,
    );
    for (let i = 0; i < L; i++)
      x = postNormLayer(w, x, albertNames(albertLayer(Math.floor(i / (L / G)))), config.hidden_act as string, eps, ref);
    ref.hidden = x;
    return ref;
  },
};

const ELECTRA: TinyEncoder = {
  name: 'ELECTRA',
  prefix: 'electra.',
  config: {
    architectures: ['ElectraForPreTraining'],
    model_type: 'electra',
    vocab_size: V,
    embedding_size: E,
    hidden_size: D,
    num_hidden_layers: 2,
    num_attention_heads: H,
    intermediate_size: FF,
    hidden_act: 'gelu',
    max_position_embeddings: P,
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
  },
  weights(config, seed) {
    const w = new TinyWeights(new Rng(seed));
    const e = config.embedding_size as number;
    w.add('electra.embeddings.word_embeddings.weight', [V, e], STD.embed);
    w.add('electra.embeddings.position_embeddings.weight', [P, e], STD.embed);
    w.add('electra.embeddings.token_type_embeddings.weight', [2, e], STD.embed);
    w.layerNorm('electra.embeddings.LayerNorm', e);
    if (e !== D) w.linear('electra.embeddings_project', e, D, STD.project);
    for (let i = 0; i < (config.num_hidden_layers as number); i++) addLayer(w, bertNames(`electra.encoder.layer.${i}`));
    // The discriminator head, ignored.
    w.linear('discriminator_predictions.dense', D, D, 0.2);
    w.linear('discriminator_predictions.dense_prediction', D, 1, 0.2);
    return w;
  },
  reference(w, config, ids, types) {
    const ref = emptyReference();
    const e = config.embedding_size as number;
    let x = embeddings(w, 'electra.', e, ids, types, 1e-12);
    if (e !== D) x = linear(x, w.get('electra.embeddings_project.weight'), w.get('electra.embeddings_project.bias'), D);
    for (let i = 0; i < (config.num_hidden_layers as number); i++)
      x = postNormLayer(w, x, bertNames(`electra.encoder.layer.${i}`), 'gelu', 1e-12, ref);
    ref.hidden = x;
    return ref;
  },
};

describe.each([DISTILBERT, ALBERT, ELECTRA])('$name: tiny random checkpoint', (family) => {
  let w: TinyWeights;
  let m: Model;
  beforeAll(async () => {
    w = family.weights(family.config, 7);
    m = await open(await writeTinyModel(family.config, w, 'bert-tiny'));
  });

  test('one text: invariants, and the float64 forward pass of modeling_*.py layer by layer', async () => {
    const a = await m.attention(TEXT);
    expect(a.model.modelType).toBe(family.config.model_type);
    expect(a.causal).toBe(false);
    expectInvariants(a, m.dims);
    expectMatchesReference(
      a,
      family.reference(
        w,
        family.config,
        a.inputIds!,
        a.inputIds!.map(() => 0),
      ),
    );
  });

  test('a sentence pair: [CLS] A [SEP] B [SEP], token types where the family has them', async () => {
    const encoded = m.tokenizer.encode(TEXT, PAIR);
    const a = await m.attention(TEXT, { pair: PAIR });
    expect(a.tokens).toEqual(encoded.tokens);
    expect(a.tokens[a.sentenceBStart! - 1]).toBe('[SEP]');
    expectInvariants(a, m.dims);
    expectMatchesReference(a, family.reference(w, family.config, a.inputIds!, encoded.typeIds));
  });

  test(`without the ${family.prefix} prefix (as the bare model saves it): the same numbers`, async () => {
    const bare = await open(
      await writeTinyModel(family.config, w, 'bert-tiny', {
        rename: (n) => (n.startsWith(family.prefix) ? n.slice(family.prefix.length) : null),
      }),
    );
    const [a, b] = [await m.attention(TEXT, { pair: PAIR }), await bare.attention(TEXT, { pair: PAIR })];
    expect(maxAbsDiff(a.attention.data, b.attention.data)).toBe(0);
    expect(maxAbsDiff(a.query!.data, b.query!.data)).toBe(0);
  });

  test.skipIf(!HAVE_SHARED)('a folder with only the legacy vocab.txt tokenizes as with tokenizer.json', async () => {
    const fast = await open(await writeTinyModel(family.config, w, 'bert-tiny', { golden: 'json' }));
    const legacy = await open(await writeTinyModel(family.config, w, 'bert-tiny', { golden: 'legacy' }));
    const [a, b] = [await fast.attention(TEXT, { pair: PAIR }), await legacy.attention(TEXT, { pair: PAIR })];
    expect(b.tokens).toEqual(a.tokens);
    expect(b.inputIds).toEqual(a.inputIds);
    expect(maxAbsDiff(a.attention.data, b.attention.data)).toBe(0);
  });
});

// ---- DistilBERT ----------------------------------------------------------------------------------------------

describe('DistilBERT', () => {
  test('the graph declares no token_type_ids (the engine feeds none)', async () => {
    const dir = await writeTinyModel(DISTILBERT.config, DISTILBERT.weights(DISTILBERT.config, 1), 'bert-tiny');
    const graph = (await graphOf(dir)).graph!;
    expect(graph.input!.map((i) => i.name)).toEqual(['input_ids', 'position_ids']);
  });

  test(
    'activation relu matches the float64 forward (and q is ' + 'reported unscaled: the softmax invariant holds)',
    async () => {
      const config = { ...DISTILBERT.config, activation: 'relu' };
      const w = DISTILBERT.weights(config, 2);
      const m = await open(await writeTinyModel(config, w, 'bert-tiny'));
      const a = await m.attention(TEXT);
      expectInvariants(a, m.dims);
      expectMatchesReference(a, DISTILBERT.reference(w, config, a.inputIds!, []));
    },
  );

  test('bad inputs: config field missing or unsupported, tensor missing or of the wrong shape', async () => {
    const w = DISTILBERT.weights(DISTILBERT.config, 3);
    const write = (config: Record<string, unknown>, rename?: (n: string) => string | null) =>
      writeTinyModel(config, w, 'bert-tiny', { rename });
    await expectBad(
      // Absent: DistilBertConfig's 12 heads, which do not divide this width.
      Model.load(await write({ ...DISTILBERT.config, n_heads: undefined })),
      /config\.json: hidden size 16 is not divisible by 12 heads/,
    );
    await expectBad(
      Model.load(await write({ ...DISTILBERT.config, activation: 'swish' })),
      /"activation" is "swish"; supported: gelu, relu/,
    );
    await expectBad(
      Model.load(
        await write(DISTILBERT.config, (n) => (n === 'distilbert.transformer.layer.1.ffn.lin2.weight' ? null : n)),
      ),
      /checkpoint is missing tensor "distilbert\.transformer\.layer\.1\.ffn\.lin2\.weight"/,
    );
    await expectBad(
      Model.load(await write({ ...DISTILBERT.config, hidden_dim: 40 })),
      new RegExp(
        /tensor "distilbert\.transformer\.layer\.0\.ffn\.lin1\.weight" has shape \[32, 16\]; /.source +
          /the config implies \[40, 16\]/.source,
      ),
    );
  });
});

// ---- ALBERT --------------------------------------------------------------------------------------------------

describe('ALBERT', () => {
  test('one layer shared by all: per-layer attention still differs (each layer sees a different input)', async () => {
    const m = await open(await writeTinyModel(ALBERT_CONFIG, ALBERT.weights(ALBERT_CONFIG, 4), 'bert-tiny'));
    const a = await m.attention(TEXT);
    const [L, , T] = a.attention.dims;
    expect(L).toBe(3);
    const layer = (i: number) => a.attention.data.subarray(i * H * T * T, (i + 1) * H * T * T);
    expect(maxAbsDiff(layer(0), layer(1))).toBeGreaterThan(0.01);
    expect(maxAbsDiff(layer(1), layer(2))).toBeGreaterThan(0.01);
  });

  test('the graph stores each checkpoint weight once, however many layers share it', async () => {
    const w = ALBERT.weights(ALBERT_CONFIG, 5);
    const external = async (layers: number) => {
      const graph = (
        await graphOf(await writeTinyModel({ ...ALBERT_CONFIG, num_hidden_layers: layers }, w, 'bert-tiny'))
      ).graph!;
      return graph.initializer!.filter((t) => (t.externalData ?? []).length > 0).map((t) => t.name!);
    };
    const three = await external(3),
      twelve = await external(12);
    expect(new Set(three).size).toBe(three.length);
    expect(twelve.sort()).toEqual(three.sort());
    // 3 embedding tables + LayerNorm (2) + mapping (2) + the shared layer's 16 tensors; pooler and heads unused.
    expect(three).toHaveLength(23);
    expect(three.filter((n) => n.includes('attention.query.weight'))).toEqual([
      `${albertLayer(0)}.attention.query.weight`,
    ]);
  });

  test('num_hidden_groups 2 of 4 layers: layers 0–1 use group 0, layers 2–3 group 1', async () => {
    const config = { ...ALBERT_CONFIG, num_hidden_layers: 4, num_hidden_groups: 2 };
    const w = ALBERT.weights(config, 6);
    const m = await open(await writeTinyModel(config, w, 'bert-tiny'));
    const encoded = m.tokenizer.encode(TEXT, PAIR);
    const a = await m.attention(TEXT, { pair: PAIR });
    expectInvariants(a, m.dims);
    expectMatchesReference(a, ALBERT.reference(w, config, a.inputIds!, encoded.typeIds));
  });

  test('bad inputs: unsupported grouping, config field missing, tensor missing or of the wrong shape', async () => {
    const w = ALBERT.weights(ALBERT_CONFIG, 8);
    const write = (config: Record<string, unknown>, rename?: (n: string) => string | null) =>
      writeTinyModel(config, w, 'bert-tiny', { rename });
    await expectBad(
      Model.load(await write({ ...ALBERT_CONFIG, inner_group_num: 2 })),
      /inner_group_num 2 is not supported/,
    );
    await expectBad(
      Model.load(await write({ ...ALBERT_CONFIG, num_hidden_groups: 4 })),
      /num_hidden_groups 4 is more than num_hidden_layers 3/,
    );
    await expectBad(
      // Absent: AlbertConfig's 4096, which the checkpoint's shapes contradict.
      Model.load(await write({ ...ALBERT_CONFIG, hidden_size: undefined })),
      /embedding_hidden_mapping_in\.weight" has shape \[16, 8\]; the config implies \[4096, 8\]/,
    );
    await expectBad(
      Model.load(
        await write(ALBERT_CONFIG, (n) => (n === 'albert.encoder.embedding_hidden_mapping_in.weight' ? null : n)),
      ),
      /checkpoint is missing tensor "albert\.encoder\.embedding_hidden_mapping_in\.weight"/,
    );
    await expectBad(
      Model.load(await write({ ...ALBERT_CONFIG, embedding_size: 12 })),
      /tensor "albert\.embeddings\.word_embeddings\.weight" has shape \[30522, 8\]; the config implies \[30522, 12\]/,
    );
    // Two groups declared, one stored.
    await expectBad(
      Model.load(await write({ ...ALBERT_CONFIG, num_hidden_groups: 3 })),
      /missing tensor "albert\.encoder\.albert_layer_groups\.1\.albert_layers\.0\./,
    );
  });
});

// ---- ELECTRA -------------------------------------------------------------------------------------------------

describe('ELECTRA', () => {
  test('embedding_size = hidden_size: no embeddings_project, and none is read', async () => {
    const config = { ...ELECTRA.config, embedding_size: D };
    const w = ELECTRA.weights(config, 9);
    expect(w.tensors.has('electra.embeddings_project.weight')).toBe(false);
    const m = await open(await writeTinyModel(config, w, 'bert-tiny'));
    const a = await m.attention(TEXT, { pair: PAIR });
    expectInvariants(a, m.dims);
    expectMatchesReference(a, ELECTRA.reference(w, config, a.inputIds!, m.tokenizer.encode(TEXT, PAIR).typeIds));
  });

  test('bad inputs: config field missing, tensor missing or of the wrong shape', async () => {
    const w = ELECTRA.weights(ELECTRA.config, 10);
    const write = (config: Record<string, unknown>, rename?: (n: string) => string | null) =>
      writeTinyModel(config, w, 'bert-tiny', { rename });
    await expectBad(
      // Absent: ElectraConfig's 12 layers; the checkpoint has 2.
      Model.load(await write({ ...ELECTRA.config, num_hidden_layers: undefined })),
      /checkpoint is missing tensor "electra\.encoder\.layer\.2\./,
    );
    await expectBad(
      Model.load(await write(ELECTRA.config, (n) => (n === 'electra.embeddings_project.bias' ? null : n))),
      /checkpoint is missing tensor "electra\.embeddings_project\.bias"/,
    );
    await expectBad(
      Model.load(await write({ ...ELECTRA.config, intermediate_size: 40 })),
      new RegExp(
        /tensor "electra\.encoder\.layer\.0\.intermediate\.dense\.weight" has shape \[32, 16\]; /.source +
          /the config implies \[40, 16\]/.source,
      ),
    );
  });
});

// ---- XLM-RoBERTa, CamemBERT (RoBERTa under other names) ------------------------------------------------------

/** roberta-tiny's vocabulary (its tokenizer.json is copied in). */
const RV = 50261;

/**
 * A RoBERTa-type config with no layer_norm_eps and no type_vocab_size: transformers' config classes fill in
 * 1e-12 and 2. The embeddings are tiny (std 0.002, variance ≈ 1e-5) so that eps 1e-12 and 1e-5 differ visibly.
 */
const robertaType = (modelType: string) => ({
  architectures: ['XLMRobertaForMaskedLM'],
  model_type: modelType,
  vocab_size: RV,
  hidden_size: D,
  num_hidden_layers: 2,
  num_attention_heads: H,
  intermediate_size: FF,
  max_position_embeddings: P + 2,
  pad_token_id: 1,
});

function robertaTypeWeights(seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  w.add('roberta.embeddings.word_embeddings.weight', [RV, D], 0.002);
  w.add('roberta.embeddings.position_embeddings.weight', [P + 2, D], 0.002);
  w.add('roberta.embeddings.token_type_embeddings.weight', [2, D], 0.002);
  w.layerNorm('roberta.embeddings.LayerNorm', D);
  for (let i = 0; i < 2; i++) addLayer(w, bertNames(`roberta.encoder.layer.${i}`));
  w.linear('lm_head.dense', D, D, 0.2);
  w.layerNorm('lm_head.layer_norm', D);
  w.add('lm_head.bias', [RV], 0.05);
  return w;
}

/** modeling_xlm_roberta.py: positions padding_idx + 1 + i, type 0, LayerNorm; BERT's layers. */
function robertaTypeReference(w: TinyWeights, ids: readonly number[], eps: number): Reference {
  const ref = emptyReference();
  let x = layerNorm(
    addRows(
      gather(w.get('roberta.embeddings.word_embeddings.weight'), D, ids),
      gather(
        w.get('roberta.embeddings.position_embeddings.weight'),
        D,
        ids.map((_, i) => 2 + i),
      ),
      gather(
        w.get('roberta.embeddings.token_type_embeddings.weight'),
        D,
        ids.map(() => 0),
      ),
    ),
    w.get('roberta.embeddings.LayerNorm.weight'),
    w.get('roberta.embeddings.LayerNorm.bias'),
    eps,
  );
  for (let i = 0; i < 2; i++) x = postNormLayer(w, x, bertNames(`roberta.encoder.layer.${i}`), 'gelu', eps, ref);
  ref.hidden = x;
  return ref;
}

describe.skipIf(!HAVE_SHARED).each(['xlm-roberta', 'camembert', 'roberta'])(
  '%s: config defaults (layer_norm_eps 1e-12, type_vocab_size 2)',
  (modelType) => {
    test('a pair matches the float64 forward pass with eps 1e-12 — and not with 1e-5', async () => {
      const w = robertaTypeWeights(12);
      const m = await open(await writeTinyModel(robertaType(modelType), w, 'roberta-tiny'));
      const a = await m.attention(TEXT, { pair: PAIR });
      expect(a.model.modelType).toBe(modelType);
      expect(a.tokens[a.sentenceBStart! - 1]).toBe('</s>');
      expectInvariants(a, m.dims);
      expectMatchesReference(a, robertaTypeReference(w, a.inputIds!, 1e-12));
      const wrong = robertaTypeReference(w, a.inputIds!, 1e-5);
      expect(
        maxAbsDiff(
          a.hiddenLast!.data,
          wrong.hidden.flatMap((r) => [...r]),
        ),
      ).toBeGreaterThan(1e-3);
    });

    test('without the roberta. prefix: the same numbers', async () => {
      const w = robertaTypeWeights(13);
      const config = robertaType(modelType);
      const [a, b] = await Promise.all(
        [(n: string) => n, (n: string) => (n.startsWith('roberta.') ? n.slice(8) : null)].map(async (rename) =>
          (await open(await writeTinyModel(config, w, 'roberta-tiny', { rename }))).attention(TEXT),
        ),
      );
      expect(maxAbsDiff(a.attention.data, b.attention.data)).toBe(0);
    });
  },
);

// ---- MPNet ---------------------------------------------------------------------------------------------------

const MPNET_CONFIG = {
  architectures: ['MPNetForMaskedLM'],
  model_type: 'mpnet',
  vocab_size: V,
  hidden_size: D,
  num_hidden_layers: 2,
  num_attention_heads: H,
  intermediate_size: FF,
  max_position_embeddings: P + 2,
  relative_attention_num_buckets: 8,
  pad_token_id: 1,
};

/** modeling_mpnet.py's relative_position_bucket (max_distance 128), in float64. */
function mpnetBucket(relative: number, buckets: number): number {
  let ret = 0;
  let n = -relative;
  const half = Math.floor(buckets / 2);
  if (n < 0) ret += half;
  n = Math.abs(n);
  const maxExact = Math.floor(half / 2);
  if (n < maxExact) return ret + n;
  return (
    ret +
    Math.min(maxExact + Math.trunc((Math.log(n / maxExact) / Math.log(128 / maxExact)) * (half - maxExact)), half - 1)
  );
}

function mpnetWeights(seed: number, prefix = 'mpnet.'): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  w.add(`${prefix}embeddings.word_embeddings.weight`, [V, D], STD.embed);
  w.add(`${prefix}embeddings.position_embeddings.weight`, [P + 2, D], STD.embed);
  w.layerNorm(`${prefix}embeddings.LayerNorm`, D);
  // A strong bias (std 2), so that a wrong bucket moves the attention visibly.
  w.add(`${prefix}encoder.relative_attention_bias.weight`, [8, H], 2);
  for (let i = 0; i < 2; i++)
    addLayer(w, {
      ...bertNames(`${prefix}encoder.layer.${i}`),
      q: `${prefix}encoder.layer.${i}.attention.attn.q`,
      k: `${prefix}encoder.layer.${i}.attention.attn.k`,
      v: `${prefix}encoder.layer.${i}.attention.attn.v`,
      o: `${prefix}encoder.layer.${i}.attention.attn.o`,
      ln1: `${prefix}encoder.layer.${i}.attention.LayerNorm`,
    });
  w.linear(`${prefix}pooler.dense`, D, D, 0.2);
  return w;
}

/** modeling_mpnet.py in float64: RoBERTa positions, the bias added to every layer's scaled scores. */
function mpnetReference(w: TinyWeights, ids: readonly number[]): Reference & { bias: Rows[] } {
  const ref = { ...emptyReference(), bias: [] as Rows[] };
  const T = ids.length;
  const table = w.get('mpnet.encoder.relative_attention_bias.weight');
  ref.bias = Array.from({ length: H }, (_, h) =>
    Array.from({ length: T }, (_, i) =>
      Float64Array.from({ length: T }, (_, j) => table[mpnetBucket(j - i, 8) * H + h]),
    ),
  );
  const lin = (y: Rows, name: string, nOut: number) => linear(y, w.get(`${name}.weight`), w.get(`${name}.bias`), nOut);
  const ln = (y: Rows, name: string) => layerNorm(y, w.get(`${name}.weight`), w.get(`${name}.bias`), 1e-12);
  let x = ln(
    addRows(
      gather(w.get('mpnet.embeddings.word_embeddings.weight'), D, ids),
      gather(
        w.get('mpnet.embeddings.position_embeddings.weight'),
        D,
        ids.map((_, i) => i + 2),
      ),
    ),
    'mpnet.embeddings.LayerNorm',
  );
  for (let i = 0; i < 2; i++) {
    const l = `mpnet.encoder.layer.${i}`;
    const q = splitHeads(lin(x, `${l}.attention.attn.q`, D), H, d),
      k = splitHeads(lin(x, `${l}.attention.attn.k`, D), H, d),
      v = splitHeads(lin(x, `${l}.attention.attn.v`, D), H, d);
    const { probs, context } = attend(q, k, v, 1 / Math.sqrt(d), (z, h, a, b) => z + ref.bias[h][a][b]);
    ref.q.push(q);
    ref.k.push(k);
    ref.probs.push(probs);
    const a = ln(addRows(x, lin(context, `${l}.attention.attn.o`, D)), `${l}.attention.LayerNorm`);
    x = ln(
      addRows(lin(activation(lin(a, `${l}.intermediate.dense`, FF), 'gelu'), `${l}.output.dense`, D), a),
      `${l}.output.LayerNorm`,
    );
  }
  ref.hidden = x;
  return ref;
}

describe.skipIf(!HAVE_SHARED)('MPNet: tiny random checkpoint', () => {
  const w = mpnetWeights(81);

  test(
    'relative position bias shared by all layers: the float64 ' + 'pass, and softmax(q·kᵀ/√d + bias) = attention',
    async () => {
      const m = await open(await writeTinyModel(MPNET_CONFIG, w, 'bert-tiny'));
      const a = await m.attention(TEXT);
      const T = a.tokens.length;
      expect(T).toBeGreaterThan(16); // distances past max_exact: logarithmic buckets in use
      const ref = mpnetReference(w, a.inputIds!);
      expectMatchesReference(a, ref);
      expect(a.positionBias!.dims).toEqual([H, T, T]);
      expect(
        maxAbsDiff(
          a.positionBias!.data,
          ref.bias.flatMap((h) => h.flatMap((r) => [...r])),
        ),
      ).toBeLessThan(1e-6);
      expectLogitInvariants(a);
    },
  );

  test('without the mpnet. prefix (MPNetModel, sentence-transformers): the same numbers', async () => {
    const bare = mpnetWeights(81, '');
    const [a, b] = [
      await (await open(await writeTinyModel(MPNET_CONFIG, w, 'bert-tiny'))).attention(TEXT),
      await (await open(await writeTinyModel(MPNET_CONFIG, bare, 'bert-tiny'))).attention(TEXT),
    ];
    expect(maxAbsDiff(a.attention.data, b.attention.data)).toBe(0);
  });

  test('bad inputs: a bias table of the wrong size, a missing one, a folder with only vocab.txt', async () => {
    await expectBad(
      loadModel(await writeTinyModel({ ...MPNET_CONFIG, relative_attention_num_buckets: 32 }, w, 'bert-tiny')),
      /tensor "mpnet\.encoder\.relative_attention_bias\.weight" has shape \[8, 2\]; the config implies \[32, 2\]/,
    );
    await expectBad(
      loadModel(
        await writeTinyModel(MPNET_CONFIG, w, 'bert-tiny', {
          rename: (n) => (n.includes('relative_attention_bias') ? null : n),
        }),
      ),
      /missing tensor "mpnet\.encoder\.relative_attention_bias\.weight"/,
    );
    await expectBad(
      loadModel(await writeTinyModel(MPNET_CONFIG, w, 'bert-tiny', { golden: 'legacy' })),
      /mpnet's vocab\.txt alone is not supported/,
    );
  });
});

/** Rows sum to 1 and softmax(attentionLogit(q·kᵀ)) — with the reported bias — = the attention. */
function expectLogitInvariants(a: Attention): void {
  const logit = (l: number, h: number, i: number, j: number, dot: number) => attentionLogit(a, l, h, i, j, dot);
  expect(softmaxError(a, logit), 'softmax(attentionLogit) = attention').toBeLessThan(1e-5);
}

// ---- DeBERTa-v2 / v3 -----------------------------------------------------------------------------------------

/** v3-like: shared att keys, 8 position buckets over max_relative_positions 12, no absolute positions. */
const DEBERTA_V3 = {
  architectures: ['DebertaV2ForMaskedLM'],
  model_type: 'deberta-v2',
  vocab_size: V,
  hidden_size: D,
  num_hidden_layers: 2,
  num_attention_heads: H,
  intermediate_size: FF,
  max_position_embeddings: P,
  relative_attention: true,
  position_buckets: 8,
  max_relative_positions: 12,
  pos_att_type: 'p2c|c2p',
  share_att_key: true,
  norm_rel_ebd: 'layer_norm',
  position_biased_input: false,
  type_vocab_size: 0,
  layer_norm_eps: 1e-7,
};

/**
 * v2-like: own pos_key_proj / pos_query_proj, no buckets (span = max_position_embeddings), absolute positions, conv.
 */
const DEBERTA_V2 = {
  ...DEBERTA_V3,
  position_buckets: undefined,
  max_relative_positions: -1,
  share_att_key: false,
  norm_rel_ebd: 'none',
  position_biased_input: true,
  conv_kernel_size: 3,
  conv_act: 'gelu',
};

type DebertaConfig = Omit<typeof DEBERTA_V3, 'position_buckets'> & {
  position_buckets?: number;
  conv_kernel_size?: number;
};

function debertaWeights(config: DebertaConfig, seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  const span = (config.position_buckets ?? 0) > 0 ? config.position_buckets! : P;
  w.add('deberta.embeddings.word_embeddings.weight', [V, D], STD.embed);
  w.add('deberta.embeddings.position_embeddings.weight', [P, D], STD.embed); // saved even when unused (v3)
  w.layerNorm('deberta.embeddings.LayerNorm', D);
  w.add('deberta.encoder.rel_embeddings.weight', [2 * span, D], 1);
  if (config.norm_rel_ebd === 'layer_norm') w.layerNorm('deberta.encoder.LayerNorm', D);
  for (let i = 0; i < 2; i++) {
    const l = `deberta.encoder.layer.${i}`;
    addLayer(w, {
      ...bertNames(l),
      q: `${l}.attention.self.query_proj`,
      k: `${l}.attention.self.key_proj`,
      v: `${l}.attention.self.value_proj`,
    });
    if (!config.share_att_key) {
      w.linear(`${l}.attention.self.pos_key_proj`, D, D, STD.qk);
      w.linear(`${l}.attention.self.pos_query_proj`, D, D, STD.qk);
    }
  }
  if (config.conv_kernel_size) {
    w.add('deberta.encoder.conv.conv.weight', [D, D, 3], 0.3);
    w.add('deberta.encoder.conv.conv.bias', [D], 0.05);
    w.layerNorm('deberta.encoder.conv.LayerNorm', D);
  }
  w.linear('lm_predictions.lm_head.dense', D, D, 0.2);
  w.layerNorm('lm_predictions.lm_head.LayerNorm', D);
  w.add('lm_predictions.lm_head.bias', [V], 0.05);
  return w;
}

/** make_log_bucket_position, in float64. */
function debertaBucket(r: number, bucketSize: number, maxPosition: number): number {
  const mid = Math.floor(bucketSize / 2);
  const abs = r < mid && r > -mid ? mid - 1 : Math.abs(r);
  const log = Math.ceil((Math.log(abs / mid) / Math.log((maxPosition - 1) / mid)) * (mid - 1)) + mid;
  return abs <= mid ? r : log * Math.sign(r);
}

/** modeling_deberta_v2.py in float64: disentangled attention, c2p and p2c gathered as transformers does. */
function debertaReference(
  w: TinyWeights,
  config: DebertaConfig,
  ids: readonly number[],
): Reference & { bias: Rows[][] } {
  const ref = { ...emptyReference(), bias: [] as Rows[][] };
  const T = ids.length,
    eps = 1e-7;
  const buckets = config.position_buckets ?? -1;
  const maxRel = config.max_relative_positions < 1 ? P : config.max_relative_positions;
  const span = buckets > 0 ? buckets : maxRel;
  const rel = (r: number) => (buckets > 0 ? debertaBucket(r, buckets, maxRel) : r);
  const clamp = (v: number) => Math.min(Math.max(v, 0), 2 * span - 1);
  const lin = (y: Rows, name: string, nOut = D) => linear(y, w.get(`${name}.weight`), w.get(`${name}.bias`), nOut);
  const ln = (y: Rows, name: string) => layerNorm(y, w.get(`${name}.weight`), w.get(`${name}.bias`), eps);
  const rows = [gather(w.get('deberta.embeddings.word_embeddings.weight'), D, ids)];
  if (config.position_biased_input)
    rows.push(
      gather(
        w.get('deberta.embeddings.position_embeddings.weight'),
        D,
        ids.map((_, i) => i),
      ),
    );
  const embeddings = ln(addRows(...rows), 'deberta.embeddings.LayerNorm');
  let x = embeddings;
  let R = gather(
    w.get('deberta.encoder.rel_embeddings.weight'),
    D,
    Array.from({ length: 2 * span }, (_, i) => i),
  );
  if (config.norm_rel_ebd === 'layer_norm') R = ln(R, 'deberta.encoder.LayerNorm');
  const scale = Math.sqrt(d * 3);
  const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, c) => s + v * b[c], 0);
  for (let i = 0; i < 2; i++) {
    const a = `deberta.encoder.layer.${i}.attention.self`;
    const q = splitHeads(lin(x, `${a}.query_proj`), H, d),
      k = splitHeads(lin(x, `${a}.key_proj`), H, d),
      v = splitHeads(lin(x, `${a}.value_proj`), H, d);
    const pk = splitHeads(lin(R, config.share_att_key ? `${a}.key_proj` : `${a}.pos_key_proj`), H, d);
    const pq = splitHeads(lin(R, config.share_att_key ? `${a}.query_proj` : `${a}.pos_query_proj`), H, d);
    const bias = q.map((_, h) =>
      Array.from({ length: T }, (_, qi) =>
        Float64Array.from({ length: T }, (_, kj) => {
          const c2p = dot(q[h][qi], pk[h][clamp(rel(qi - kj) + span)]);
          const p2c = dot(k[h][kj], pq[h][clamp(-rel(kj - qi) + span)]);
          return (c2p + p2c) / scale;
        }),
      ),
    );
    const { probs, context } = attend(q, k, v, 1 / scale, (z, h, qi, kj) => z + bias[h][qi][kj]);
    ref.q.push(q);
    ref.k.push(k);
    ref.probs.push(probs);
    ref.bias.push(bias);
    const l = `deberta.encoder.layer.${i}`;
    const att = ln(addRows(x, lin(context, `${l}.attention.output.dense`)), `${l}.attention.output.LayerNorm`);
    x = ln(
      addRows(lin(activation(lin(att, `${l}.intermediate.dense`, FF), 'gelu'), `${l}.output.dense`), att),
      `${l}.output.LayerNorm`,
    );
    if (i === 0 && config.conv_kernel_size) {
      const W = w.get('deberta.encoder.conv.conv.weight'),
        b = w.get('deberta.encoder.conv.conv.bias');
      const conv = Array.from({ length: T }, (_, t) =>
        Float64Array.from({ length: D }, (_, o) => {
          let s = b[o];
          for (let c = 0; c < D; c++)
            for (let kk = 0; kk < 3; kk++) {
              const src = t + kk - 1;
              if (src >= 0 && src < T) s += W[(o * D + c) * 3 + kk] * embeddings[src][c];
            }
          return s;
        }),
      );
      x = ln(addRows(x, activation(conv, 'gelu')), 'deberta.encoder.conv.LayerNorm');
    }
  }
  ref.hidden = x;
  return ref;
}

describe.skipIf(!HAVE_SHARED).each([
  ['v3 (buckets, shared keys)', DEBERTA_V3],
  ['v2 (own position projections, conv)', DEBERTA_V2],
])('DeBERTa %s: tiny random checkpoint', (_, config) => {
  const w = debertaWeights(config, 91);

  test(
    'disentangled attention: the float64 pass, and ' + 'softmax(q·kᵀ·scale + layer_position_bias) = attention',
    async () => {
      const m = await open(await writeTinyModel(config, w, 'bert-tiny'));
      const long = `${TEXT} ${PAIR} ${TEXT}`;
      const a = await m.attention(long);
      const T = a.tokens.length;
      expect(T).toBeGreaterThan(2 * 12); // relative distances past max_relative_positions: buckets clamp at the span
      const ref = debertaReference(w, config, a.inputIds!);
      expectMatchesReference(a, ref);
      expect(a.scoreScale).toBeCloseTo(1 / Math.sqrt(8 * 3), 12);
      expect(a.layerPositionBias!.dims).toEqual([2, H, T, T]);
      const bias = ref.bias.flatMap((l) => l.flatMap((h) => h.flatMap((r) => [...r])));
      expect(maxAbsDiff(a.layerPositionBias!.data, bias)).toBeLessThan(1e-5 * Math.max(1, maxAbs(bias)));
      expectLogitInvariants(a);
    },
  );
});

describe.skipIf(!HAVE_SHARED)('DeBERTa: buckets and bad inputs', () => {
  test('make_log_bucket_position (float32 as torch) agrees with float64 for every distance of the test configs', () => {
    for (const [bucketSize, maxPosition] of [
      [8, 12],
      [256, 512],
    ])
      for (let r = -600; r <= 600; r++)
        expect(logBucketPosition(r, bucketSize, maxPosition), `r ${r}`).toBe(debertaBucket(r, bucketSize, maxPosition));
    // Worked by hand (DeBERTa-v3: 256 buckets, 512 positions): exact within ±128, then logarithmic.
    expect([0, 5, -127, 128, 129, 511, -511, 1000].map((r) => logBucketPosition(r, 256, 512))).toEqual([
      0, 5, -127, 128, 129, 255, -255, 317,
    ]);
  });

  test.each([
    [{ relative_attention: false }, /relative_attention is false but pos_att_type \["p2c","c2p"\]/],
    [{ pos_att_type: 'c2p|p2p' }, /pos_att_type "p2p" is not supported \(supported: c2p, p2c\)/],
    [{ norm_rel_ebd: 'batch_norm' }, /norm_rel_ebd "batch_norm" is not supported/],
    [
      { position_buckets: 16 },
      /tensor "deberta\.encoder\.rel_embeddings\.weight" has shape \[16, 16\]; the config implies \[32, 16\]/,
    ],
  ] as const)('bad config %j', async (patch, pattern) => {
    await expectBad(
      loadModel(await writeTinyModel({ ...DEBERTA_V3, ...patch }, debertaWeights(DEBERTA_V3, 92), 'bert-tiny')),
      pattern,
    );
  });

  test('v3 with share_att_key false but no pos_key_proj: the missing tensor is named', async () => {
    await expectBad(
      loadModel(
        await writeTinyModel({ ...DEBERTA_V3, share_att_key: false }, debertaWeights(DEBERTA_V3, 93), 'bert-tiny'),
      ),
      /missing tensor "deberta\.encoder\.layer\.0\.attention\.self\.pos_key_proj\.weight"/,
    );
  });
});

describe.skipIf(!HAVE_SHARED)('DeBERTa: fresh results, made after the run (ort-direct.ts lentArray)', () => {
  const tensors = (a: Attention) => [a.attention, a.query!, a.key!, a.hiddenLast!, a.layerPositionBias!];
  const sameBits = (a: Float32Array, b: Float32Array) =>
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

  test('equal the kept buffers bit for bit, keep their values through later calls, give memory back', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const m = await open(await writeTinyModel(DEBERTA_V3, debertaWeights(DEBERTA_V3, 91), 'bert-tiny'));
    const first = await m.attention(TEXT);
    const copies = tensors(first).map((t) => t.data.slice());
    const other = await m.attention(PAIR);
    expect(other.tokens.length).not.toBe(first.tokens.length);
    const reused = await m.attention(TEXT, { reuse: true });
    for (const [i, t] of tensors(reused).entries()) {
      expect(t.dims).toEqual(tensors(first)[i].dims);
      expect(sameBits(t.data, copies[i]), `tensor ${i}`).toBe(true);
    }
    await m.attention(TEXT);
    for (const [i, t] of tensors(first).entries()) expect(sameBits(t.data, copies[i]), `tensor ${i}`).toBe(true);
    if (!DirectSession.available) return;
    // A collected result's memory goes back to the spares.
    let dropped: Attention | null = await m.attention(PAIR);
    const bytes = [dropped.attention, dropped.query!, dropped.key!, dropped.layerPositionBias!].reduce(
      (n, t) => n + t.data.byteLength,
      0,
    );
    dropped = null;
    gc();
    await sparesBack();
    expect(spareBytes()).toBeGreaterThanOrEqual(bytes);
    // None of them is the memory of a result still held.
    await m.attention(PAIR);
    await m.attention(TEXT);
    for (const [i, t] of tensors(first).entries()) expect(sameBits(t.data, copies[i]), `tensor ${i}`).toBe(true);
  });
});

// ---- ModernBERT ----------------------------------------------------------------------------------------------

const MODERNBERT_CONFIG = {
  architectures: ['ModernBertForMaskedLM'],
  model_type: 'modernbert',
  vocab_size: V,
  hidden_size: D,
  intermediate_size: FF,
  num_hidden_layers: 3,
  num_attention_heads: H,
  max_position_embeddings: P,
  global_attn_every_n_layers: 3,
  local_attention: 4,
  global_rope_theta: 160000,
  local_rope_theta: 10000,
};

function modernbertWeights(seed: number, normBias = false): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  const norm = (name: string) => (normBias ? w.layerNorm(name, D) : w.add(`${name}.weight`, [D], 0.05, 1));
  w.add('model.embeddings.tok_embeddings.weight', [V, D], STD.embed);
  norm('model.embeddings.norm');
  for (let i = 0; i < 3; i++) {
    const l = `model.layers.${i}`;
    if (i > 0) norm(`${l}.attn_norm`);
    w.add(`${l}.attn.Wqkv.weight`, [3 * D, D], STD.qk * 1.5);
    w.add(`${l}.attn.Wo.weight`, [D, D], STD.out);
    norm(`${l}.mlp_norm`);
    w.add(`${l}.mlp.Wi.weight`, [2 * FF, D], STD.ff1);
    w.add(`${l}.mlp.Wo.weight`, [D, FF], STD.ff2);
  }
  norm('model.final_norm');
  w.add('head.dense.weight', [D, D], 0.2);
  w.add('head.norm.weight', [D], 0.05, 1);
  w.add('decoder.bias', [V], 0.05);
  return w;
}

/** modeling_modernbert.py in float64 (no biases): pre-norm, RoPE per layer kind, local |i − j| ≤ 2, GeGLU. */
function modernbertReference(w: TinyWeights, ids: readonly number[]): Reference {
  const ref = emptyReference();
  const zeros = new Float32Array(D);
  const ln = (y: Rows, name: string) => layerNorm(y, w.get(`${name}.weight`), zeros, 1e-5);
  const lin = (y: Rows, name: string, nOut: number) => linear(y, w.get(`${name}.weight`), null, nOut);
  let x = ln(gather(w.get('model.embeddings.tok_embeddings.weight'), D, ids), 'model.embeddings.norm');
  for (let i = 0; i < 3; i++) {
    const l = `model.layers.${i}`;
    const local = i % 3 !== 0;
    const qkv = lin(i === 0 ? x : ln(x, `${l}.attn_norm`), `${l}.attn.Wqkv`, 3 * D);
    const theta = local ? 10000 : 160000;
    const q = rope(
        splitHeads(
          qkv.map((r) => r.slice(0, D)),
          H,
          d,
        ),
        d,
        theta,
      ),
      k = rope(
        splitHeads(
          qkv.map((r) => r.slice(D, 2 * D)),
          H,
          d,
        ),
        d,
        theta,
      ),
      v = splitHeads(
        qkv.map((r) => r.slice(2 * D)),
        H,
        d,
      );
    const { probs, context } = attend(q, k, v, 1 / Math.sqrt(d), (z, _h, a, b) =>
      local && Math.abs(a - b) > 2 ? -Infinity : z,
    );
    ref.q.push(q);
    ref.k.push(k);
    ref.probs.push(probs);
    x = addRows(x, lin(context, `${l}.attn.Wo`, D));
    const wi = lin(ln(x, `${l}.mlp_norm`), `${l}.mlp.Wi`, 2 * FF);
    const act = activation(
      wi.map((r) => r.slice(0, FF)),
      'gelu',
    );
    x = addRows(
      x,
      lin(
        act.map((r, t) => r.map((val, j) => val * wi[t][FF + j])),
        `${l}.mlp.Wo`,
        D,
      ),
    );
  }
  ref.hidden = ln(x, 'model.final_norm');
  return ref;
}

describe.skipIf(!HAVE_SHARED)('ModernBERT: tiny random checkpoint', () => {
  const w = modernbertWeights(101);

  test(
    'global layer 0 (θ 160000), local layers 1–2 with a window ' + 'of 4 shorter than the text: the float64 pass',
    async () => {
      const m = await open(await writeTinyModel(MODERNBERT_CONFIG, w, 'bert-tiny'));
      const a = await m.attention(TEXT);
      expect(a.tokens.length).toBeGreaterThan(10);
      expect(a.layerWindows).toEqual([null, [2, 2], [2, 2]]);
      expect(a.causal).toBe(false);
      expectMatchesReference(a, modernbertReference(w, a.inputIds!));
      expectLogitInvariants(a);
      // Local rows are exactly zero beyond the window.
      const T = a.tokens.length;
      expect(a.attention.data[((1 * H + 0) * T + 0) * T + 3]).toBe(0);
    },
  );

  test('long inputs layer by layer: runs of heads (global layers unmasked), the bits of one session', async () => {
    const dir = await writeTinyModel(MODERNBERT_CONFIG, w, 'bert-tiny');
    const a = await (await open(dir, { staged: false })).attention(TEXT);
    // Staged, the layers leave their attention to one session that computes it a run of heads at a time (one
    // head with headChunk 1, else as many as fit; with the window mask a local layer outputs, a broadcast zero on
    // the global layer): a whole layer's [H, T, T] is never computed at once.
    for (const [options, runs] of [
      [{ headChunk: 1 }, [[0], [1]]],
      [{ staged: true }, [[0, 1]]],
    ] as const) {
      const m = await open(dir, options);
      const b = await m.attention(TEXT);
      expect(m.sessionKind).toBe('staged');
      for (const key of ['attention', 'query', 'key', 'hiddenLast'] as const)
        expect(maxAbsDiff(b[key]!.data, a[key]!.data), `${key}, ${JSON.stringify(options)}`).toBe(0);
      const seen: number[][] = [];
      for await (const part of m.stream(TEXT)) seen.push([part.layer, ...part.heads]);
      expect(seen).toEqual([0, 1, 2].flatMap((l) => runs.map((heads) => [l, ...heads])));
    }
  });

  test('bad inputs: a bias ModernBERT does not declare, a wrong Wqkv shape, an unknown activation', async () => {
    const biased = modernbertWeights(102);
    biased.add('model.layers.1.attn.Wqkv.bias', [3 * D], 0.05);
    await expectBad(
      loadModel(await writeTinyModel(MODERNBERT_CONFIG, biased, 'bert-tiny')),
      /checkpoint tensor "model\.layers\.1\.attn\.Wqkv\.bias"/,
    );
    await expectBad(
      loadModel(
        await writeTinyModel({ ...MODERNBERT_CONFIG, num_attention_heads: 4, hidden_size: 32 }, w, 'bert-tiny'),
      ),
      /tensor "model\.embeddings\.tok_embeddings\.weight" has shape \[30522, 16\]; the config implies \[30522, 32\]/,
    );
    await expectBad(
      loadModel(await writeTinyModel({ ...MODERNBERT_CONFIG, hidden_activation: 'swiglu' }, w, 'bert-tiny')),
      /"hidden_activation" is "swiglu"/,
    );
  });
});
