/**
 * The encoder families besides BERT. RoBERTa is checked against the golden cases (an independent
 * reference, ../shared/golden). DistilBERT, ALBERT and ELECTRA have no golden data yet: they run on tiny
 * random checkpoints (test/tiny-models.ts) and are checked for the invariants, against a float64 forward
 * pass written in this file from transformers' modeling_{distilbert,albert,electra}.py, for their own
 * structure (DistilBERT has no token types, ALBERT stores its shared layer once, ELECTRA projects its
 * embeddings), and for one-line errors on bad inputs.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Model } from '../src/models/checkpoint-model.js';
import { deriveCheckpoint, removeCheckpoint, type DeriveOptions } from './checkpoints.js';
import {
  expectMatchesGolden,
  goldenCases,
  goldenModel,
  HAVE_SHARED,
  maxAbsDiff,
  readGoldenCase,
  SHARED,
} from './shared.js';
import {
  activation,
  addRows,
  attend,
  expectBad,
  expectInvariants,
  expectMatchesReference,
  gather,
  graphOf,
  layerNorm,
  linear,
  removeTinyModels,
  Rng,
  splitHeads,
  TinyWeights,
  writeTinyModel,
  type Reference,
  type Rows,
} from './tiny-models.js';

const TEXT = 'The cat sat on the mat; the dog, unimpressed, watched it.';
const PAIR = 'A second sentence.';

const loaded: Model[] = [];
const derived: string[] = [];
async function open(dir: string): Promise<Model> {
  const m = await Model.load(dir);
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
    await expectBad(
      Model.load(await derive('roberta-tiny', { config: { num_attention_heads: undefined } })),
      /config\.json/,
      /missing field "num_attention_heads"/,
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
  const { probs, context } = attend(q, k, v, 1 / Math.sqrt(d), false);
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

  test('activation relu matches the float64 forward (and q is reported unscaled: the softmax invariant holds)', async () => {
    const config = { ...DISTILBERT.config, activation: 'relu' };
    const w = DISTILBERT.weights(config, 2);
    const m = await open(await writeTinyModel(config, w, 'bert-tiny'));
    const a = await m.attention(TEXT);
    expectInvariants(a, m.dims);
    expectMatchesReference(a, DISTILBERT.reference(w, config, a.inputIds!, []));
  });

  test('bad inputs: config field missing or unsupported, tensor missing or of the wrong shape', async () => {
    const w = DISTILBERT.weights(DISTILBERT.config, 3);
    const write = (config: Record<string, unknown>, rename?: (n: string) => string | null) =>
      writeTinyModel(config, w, 'bert-tiny', { rename });
    await expectBad(
      Model.load(await write({ ...DISTILBERT.config, n_heads: undefined })),
      /config\.json: missing field "n_heads"/,
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
      /tensor "distilbert\.transformer\.layer\.0\.ffn\.lin1\.weight" has shape \[32, 16\]; the config implies \[40, 16\]/,
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
      Model.load(await write({ ...ALBERT_CONFIG, hidden_size: undefined })),
      /missing field "hidden_size"/,
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
      Model.load(await write({ ...ELECTRA.config, num_hidden_layers: undefined })),
      /missing field "num_hidden_layers"/,
    );
    await expectBad(
      Model.load(await write(ELECTRA.config, (n) => (n === 'electra.embeddings_project.bias' ? null : n))),
      /checkpoint is missing tensor "electra\.embeddings_project\.bias"/,
    );
    await expectBad(
      Model.load(await write({ ...ELECTRA.config, intermediate_size: 40 })),
      /tensor "electra\.encoder\.layer\.0\.intermediate\.dense\.weight" has shape \[32, 16\]; the config implies \[40, 16\]/,
    );
  });
});
