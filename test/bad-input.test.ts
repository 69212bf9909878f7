import { mkdir, mkdtemp, open, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readAttentionFile } from '../src/core/files.js';
import type { Model } from '../src/models/checkpoint-model.js';
import { loadModel } from '../src/models/load-model.js';
import { FAMILIES } from '../src/graph/families.js';
import { cli, expectCliError, HAVE_CLI } from './cli-run.js';
import { deriveCheckpoint, removeCheckpoint, type DeriveOptions } from './checkpoints.js';
import { expectBad, goldenModel, HAVE_SHARED, loadedOnce, maxAbsDiff, readGoldenCase, SHARED } from './shared.js';

const BERT = 'bert-tiny';
const GPT2 = 'gpt2-tiny';

// ---- helpers --------------------------------------------------------------------------------------------

const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.map(removeCheckpoint));
});

async function tempDir(prefix = 'attnviz-bad-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

async function derive(model: string, options: DeriveOptions = {}): Promise<string> {
  const dir = await deriveCheckpoint(goldenModel(model), options);
  made.push(dir);
  return dir;
}

/** A derived folder whose file `name` is replaced by `contents`. */
async function withFile(
  model: string,
  name: string,
  contents: string | Uint8Array,
  options: DeriveOptions = {},
): Promise<string> {
  const dir = await derive(model, options);
  await writeFile(join(dir, name), contents);
  return dir;
}

/** The folder's config.json with `patch` applied (undefined deletes a field). */
const withConfig = (model: string, patch: Record<string, unknown>) => derive(model, { config: patch });

const load = (dir: string) => loadModel(dir);
async function attentionOf(dir: string, text: string, options: { pair?: string; truncate?: boolean } = {}) {
  const m = await loadModel(dir);
  try {
    return await m.attention(text, options);
  } finally {
    await m.release();
  }
}

/**
 * safetensors image from a header given as a JSON value or raw text, plus data bytes; `length` overrides the stored
 * length.
 */
function safetensorsImage(header: unknown, data: Uint8Array = new Uint8Array(0), length?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(length ?? BigInt(json.length), 0);
  json.copy(out, 8);
  out.set(data, 8 + json.length);
  return out;
}

type HeaderJson = Record<
  string,
  { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
>;

/** Rewrites the header of `dir/model.safetensors` (data bytes unchanged) with `mutate`. */
async function mutateHeader(dir: string, mutate: (header: HeaderJson, dataSize: number) => void): Promise<void> {
  const file = join(dir, 'model.safetensors');
  const bytes = await readFile(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as HeaderJson;
  const data = bytes.subarray(8 + n);
  mutate(header, data.length);
  await writeFile(file, safetensorsImage(header, data));
}

const tensorOf = (h: HeaderJson, name: string) =>
  h[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };

/**
 * `extract` on `model` with output into a fresh folder: must fail as expectCliError says and leave that
 * folder empty (no output, no `.tmp`). Returns the result.
 */
async function extractFails(model: string, extra: string[], env: NodeJS.ProcessEnv, ...keys: (string | RegExp)[]) {
  const outDir = await tempDir('attnviz-out-');
  const args = ['extract', '--model', model, ...extra];
  if (!extra.includes('--out')) args.push('--out', join(outDir, 'out.safetensors'));
  if (!extra.includes('--text')) args.push('--text', 'The cat sat on the mat.');
  const r = await cli(args, env);
  expectCliError(r, ...keys);
  expect(await readdir(outDir), 'nothing written').toEqual([]);
  return r;
}

const words = (n: number, word = 'the') => Array.from({ length: n }, () => word).join(' ');

// ---- the model folder ------------------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('library: model folder', () => {
  test('missing config.json', async () => {
    const dir = await derive(BERT, { omit: ['config.json'] });
    await expectBad(
      load(dir),
      dir,
      /no config\.json/,
      /not a model attnviz reads \(a model is a Hugging Face folder with config\.json/,
    );
  });

  test('config.json is a folder', async () => {
    const dir = await derive(BERT, { omit: ['config.json'] });
    await mkdir(join(dir, 'config.json'));
    await expectBad(load(dir), /config\.json/);
  });

  test('missing weights', async () => {
    const dir = await derive(BERT, { omit: ['model.safetensors'] });
    await expectBad(load(dir), dir, /no weights/, /model\.safetensors/, /model\.safetensors\.index\.json/);
  });

  test('missing tokenizer: BERT with neither tokenizer.json nor vocab.txt', async () => {
    const dir = await derive(BERT, { dropTokenizerJson: true, omit: ['vocab.txt'] });
    await expectBad(load(dir), /no tokenizer/, dir, /tokenizer\.json/, /vocab\.txt/);
  });

  test(
    'missing tokenizer: GPT-2 with neither tokenizer.json nor ' +
      'vocab.json + merges.txt (one of the two is not enough)',
    async () => {
      await expectBad(
        load(await derive(GPT2, { dropTokenizerJson: true, omit: ['vocab.json', 'merges.txt'] })),
        /no tokenizer/,
        /vocab\.json \+ merges\.txt/,
      );
      await expectBad(
        load(await derive(GPT2, { dropTokenizerJson: true, omit: ['merges.txt'] })),
        /no tokenizer/,
        /merges\.txt/,
      );
    },
  );

  test('tokenizer.json that is not JSON, or has no model', async () => {
    await expectBad(load(await withFile(BERT, 'tokenizer.json', '{"model": ')), /tokenizer\.json is not valid JSON/);
    await expectBad(load(await withFile(BERT, 'tokenizer.json', '{}')), /tokenizer\.json has no "model"/);
  });

  test('config.json that is not JSON', async () => {
    const dir = await withFile(BERT, 'config.json', '{"model_type": "bert",');
    await expectBad(load(dir), /config\.json: not valid JSON/);
  });

  test('config.json that is JSON but not an object', async () => {
    await expectBad(load(await withFile(BERT, 'config.json', '[1, 2]')), /config\.json: must be a JSON object/);
  });

  test('config: a required field missing, absent sizes taking defaults the checkpoint contradicts', async () => {
    await expectBad(
      load(await withConfig(BERT, { num_attention_heads: undefined })),
      /config\.json/,
      /hidden size 40 is not divisible by 12 heads/, // BertConfig's default
    );
    await expectBad(
      load(await withConfig(BERT, { hidden_size: undefined })),
      /word_embeddings\.weight" has shape \[30522, 40\]; the config implies \[30522, 768\]/,
    );
    // Absent, a size takes the config class's default (GPT2Config: 12 heads), which this width contradicts.
    await expectBad(
      load(await withConfig(GPT2, { n_head: undefined })),
      /config\.json: hidden size 32 is not divisible by 12 heads/,
    );
    await expectBad(load(await withConfig(GPT2, { model_type: undefined })), /missing field "model_type"/);
  });

  test('config field of the wrong type or value', async () => {
    await expectBad(
      load(await withConfig(BERT, { num_hidden_layers: '3' })),
      /"num_hidden_layers" must be an integer from 1 to 16777216, got "3"/,
    );
    await expectBad(
      load(await withConfig(BERT, { num_attention_heads: 3 })),
      /hidden size 40 is not divisible by 3 heads/,
    );
    await expectBad(
      load(await withConfig(GPT2, { activation_function: 'swish' })),
      /"activation_function" is "swish"; supported: gelu/,
    );
  });

  test('a config with 0 layers is rejected when loading', async () => {
    const dir = await withConfig(GPT2, { n_layer: 0 });
    await expectBad(load(dir), /n_layer|layers/);
  });

  test('unknown model_type lists the supported ones', async () => {
    // Messages are capped at 300 characters (core/errors.ts oneLine): a long list keeps its start and its end.
    await expectBad(
      load(await withConfig(GPT2, { model_type: 'xlnet' })),
      /model_type "xlnet" is not supported \(supported: bert, gpt2, .*….*\)$/,
    );
    const last = FAMILIES[FAMILIES.length - 1].modelType;
    await expectBad(
      load(await withConfig(BERT, { model_type: 'reformer' })),
      `model_type "reformer" is not supported (supported: bert, gpt2`,
      `${last})`,
    );
  });

  test('a nonexistent folder that is also not a hub id', async () => {
    await expectBad(load('./no/such/dir'), './no/such/dir', /no such file or folder/, /not a hub id/);
  });

  test('a file where a folder is expected', async () => {
    await expectBad(
      load(join(goldenModel(BERT), 'config.json')),
      /not a model attnviz reads \(a model is a Hugging Face folder/,
    );
  });

  test('no model at all', async () => {
    await expectBad(load(''), /no model given/);
    await expectBad(load('   '), /no model given/);
  });

  test('a hub id that is not cached, offline', async () => {
    const cache = await tempDir('attnviz-empty-cache-');
    await expectBad(
      loadModel('nobody/no-such-model', { env: { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: cache } }),
      /"nobody\/no-such-model" is not in the Hugging Face cache/,
      cache,
      /HF_HUB_OFFLINE/,
    );
    await expectBad(
      loadModel('nobody/no-such-model@v1.0', { env: { HF_HUB_OFFLINE: 'true', HF_HUB_CACHE: cache } }),
      /not in the Hugging Face cache/,
    );
    expect(await readdir(cache), 'the offline lookup writes nothing').toEqual([]);
  });
});

// ---- hostile safetensors ------------------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('library: hostile safetensors', () => {
  const weightsFile = (image: Uint8Array) => withFile(GPT2, 'model.safetensors', image);

  test('a file shorter than the 8-byte length', async () => {
    await expectBad(load(await weightsFile(new Uint8Array(0))), /model\.safetensors: 0 bytes is too short/);
    await expectBad(load(await weightsFile(new Uint8Array(5))), /5 bytes is too short/);
  });

  test('header length past the end of the file', async () => {
    const image = safetensorsImage({}, new Uint8Array(16));
    image.writeBigUInt64LE(BigInt(image.length), 0);
    await expectBad(
      load(await weightsFile(image)),
      /model\.safetensors/,
      new RegExp(`header length ${image.length} runs past the end of the ${image.length}-byte file`),
    );
  });

  test('huge header length (2^40, 2^64-1) is refused without being read', async () => {
    await expectBad(
      load(await weightsFile(safetensorsImage('{}', new Uint8Array(64), 2n ** 40n))),
      /header length 1099511627776 runs past the end/,
    );
    await expectBad(
      load(await weightsFile(safetensorsImage('{}', new Uint8Array(64), 2n ** 64n - 1n))),
      /header length 18446744073709551615 runs past the end/,
    );
  });

  test('a header length within the file but over the 100 MB limit (sparse 200 MB file)', async () => {
    const dir = await derive(GPT2, { omit: ['model.safetensors'] });
    const handle = await open(join(dir, 'model.safetensors'), 'w');
    try {
      const first = Buffer.alloc(8);
      first.writeBigUInt64LE(150n * 1024n * 1024n);
      await handle.write(first, 0, 8, 0);
      await handle.truncate(200 * 1024 * 1024);
    } finally {
      await handle.close();
    }
    await expectBad(load(dir), /header of 157286400 bytes exceeds the 104857600-byte limit/);
  });

  test('header not JSON, not UTF-8, or not an object', async () => {
    await expectBad(
      load(await weightsFile(safetensorsImage('{"wte.weight": {"dtype": "F32", '))),
      /model\.safetensors: safetensors header is not valid JSON/,
    );
    const bad = safetensorsImage('{}');
    bad.set([0xff, 0xfe], 8);
    await expectBad(load(await weightsFile(bad)), /header is not valid JSON/);
    await expectBad(load(await weightsFile(safetensorsImage('[1, 2, 3]'))), /header is not a JSON object/);
  });

  test('data offsets out of range', async () => {
    const dir = await derive(GPT2);
    await mutateHeader(dir, (h, size) => {
      const t = tensorOf(h, 'ln_f.bias');
      const n = t.data_offsets[1] - t.data_offsets[0];
      t.data_offsets = [size - n + 4, size + 4];
    });
    await expectBad(load(dir), /tensor "ln_f\.bias" has data_offsets \[\d+, \d+\] outside the file's \d+ data bytes/);
  });

  test('data offsets reversed, negative or fractional', async () => {
    const dir = await derive(GPT2);
    await mutateHeader(dir, (h) => {
      const t = tensorOf(h, 'ln_f.bias');
      t.data_offsets = [t.data_offsets[1], t.data_offsets[0]];
    });
    await expectBad(load(dir), /tensor "ln_f\.bias" has data_offsets/);
    const dir2 = await derive(GPT2);
    await mutateHeader(dir2, (h) => {
      tensorOf(h, 'ln_f.bias').data_offsets = [-128, 0];
    });
    await expectBad(load(dir2), /tensor "ln_f\.bias" has invalid data_offsets \[-128,0\]/);
    const dir3 = await derive(GPT2);
    await mutateHeader(dir3, (h) => {
      tensorOf(h, 'ln_f.bias').data_offsets = [0.5, 128.5];
    });
    await expectBad(load(dir3), /tensor "ln_f\.bias" has invalid data_offsets/);
  });

  test('overlapping tensors', async () => {
    const dir = await derive(GPT2);
    await mutateHeader(dir, (h) => {
      tensorOf(h, 'ln_f.weight').data_offsets = [...tensorOf(h, 'ln_f.bias').data_offsets];
    });
    await expectBad(load(dir), /tensor "ln_f\.(bias|weight)" starts at data byte \d+, not \d+: tensors overlap/);
  });

  test('dtype / shape that disagree with the byte count', async () => {
    const dir = await derive(GPT2);
    await mutateHeader(dir, (h) => {
      tensorOf(h, 'ln_f.bias').shape = [33];
    });
    await expectBad(
      load(dir),
      /tensor "ln_f\.bias": dtype F32 and shape \[33\] need 132 bytes but data_offsets span 128/,
    );
    const dir2 = await derive(GPT2);
    await mutateHeader(dir2, (h) => {
      tensorOf(h, 'ln_f.bias').dtype = 'F16';
    });
    await expectBad(
      load(dir2),
      /tensor "ln_f\.bias": dtype F16 and shape \[32\] need 64 bytes but data_offsets span 128/,
    );
  });

  test('an unknown dtype, a bad shape, a non-string __metadata__', async () => {
    const dir = await derive(GPT2);
    await mutateHeader(dir, (h) => {
      tensorOf(h, 'ln_f.bias').dtype = 'F8_E4M3';
    });
    await expectBad(load(dir), /tensor "ln_f\.bias" has unsupported dtype "F8_E4M3" \(supported: F64, F32/);
    const dir2 = await derive(GPT2);
    await mutateHeader(dir2, (h) => {
      tensorOf(h, 'ln_f.bias').shape = [-32] as number[];
    });
    await expectBad(load(dir2), /tensor "ln_f\.bias" has an invalid shape \[-32\]/);
    const dir3 = await derive(GPT2);
    await mutateHeader(dir3, (h) => {
      h.__metadata__ = { format: 1 } as unknown as Record<string, string>;
    });
    await expectBad(load(dir3), /__metadata__ must map strings to strings/);
  });

  test('a truncated file (cut in the middle of the data)', async () => {
    const bytes = await readFile(join(goldenModel(GPT2), 'model.safetensors'));
    const dir = await weightsFile(bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectBad(
      load(dir),
      new RegExp(
        /model\.safetensors: tensor "[^"]+" has data_offsets .* outside the file's \d+ data bytes /.source +
          /\(truncated or corrupt file\)/.source,
      ),
    );
  });

  test('a truncated shard of a sharded checkpoint', async () => {
    const dir = await derive(BERT, { shards: 3 });
    const shard = join(dir, 'model-00002-of-00003.safetensors');
    const bytes = await readFile(shard);
    await writeFile(shard, bytes.subarray(0, bytes.length - 100));
    await expectBad(load(dir), /model-00002-of-00003\.safetensors: tensor "[^"]+" .* \(truncated or corrupt file\)/);
  });

  test('model.safetensors.index.json: not JSON, no weight_map, unsafe or missing shard names', async () => {
    const index = (json: string) => withFile(BERT, 'model.safetensors.index.json', json, { shards: 2 });
    await expectBad(load(await index('{"weight_map": ')), /model\.safetensors\.index\.json: not valid JSON/);
    await expectBad(load(await index('{"metadata": {}}')), /model\.safetensors\.index\.json: has no weight_map/);
    await expectBad(
      load(await index('{"weight_map": {"a": "../model-00001-of-00002.safetensors"}}')),
      /shard name "\.\.\/model-00001-of-00002\.safetensors" is not a file name in the model folder/,
    );
    await expectBad(load(await index('{"weight_map": {"a": 5}}')), /shard name 5 is not a file name/);
    await expectBad(
      load(await index('{"weight_map": {"a": "model-00009-of-00009.safetensors"}}')),
      /shard model-00009-of-00009\.safetensors listed in model\.safetensors\.index\.json is missing/,
    );
  });

  test('model.safetensors.index.json holding `null` gives an AttnvizError', async () => {
    await expectBad(
      load(await withFile(BERT, 'model.safetensors.index.json', 'null', { shards: 2 })),
      /model\.safetensors\.index\.json/,
    );
  });

  test('an empty weight_map gives an AttnvizError', async () => {
    await expectBad(
      load(await withFile(BERT, 'model.safetensors.index.json', '{"weight_map": {}}', { shards: 2 })),
      /weight_map|no shards|no weights/,
    );
  });

  test('a shard name "." or a model.safetensors folder gives an AttnvizError', async () => {
    await expectBad(
      load(await withFile(BERT, 'model.safetensors.index.json', '{"weight_map": {"a": "."}}', { shards: 2 })),
      /not a file|shard/,
    );
    const dir = await derive(BERT, { omit: ['model.safetensors'] });
    await mkdir(join(dir, 'model.safetensors'));
    await expectBad(load(dir), /model\.safetensors/);
  });
});

// ---- tensors that do not fit the config ------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('library: tensors', () => {
  test('a tensor missing', async () => {
    const dir = await derive(BERT, {
      rename: (n) => (n === 'bert.encoder.layer.1.attention.self.key.weight' ? null : n),
    });
    await expectBad(load(dir), /checkpoint is missing tensor "bert\.encoder\.layer\.1\.attention\.self\.key\.weight"/);
    const dir2 = await derive(GPT2, { rename: (n) => (n === 'h.1.mlp.c_proj.bias' ? null : n) });
    await expectBad(load(dir2), /missing tensor "h\.1\.mlp\.c_proj\.bias"/);
  });

  test('a LayerNorm missing names both spellings it looked for', async () => {
    const dir = await derive(BERT, { rename: (n) => (n === 'bert.embeddings.LayerNorm.weight' ? null : n) });
    await expectBad(
      load(dir),
      /missing tensor "bert\.embeddings\.LayerNorm\.weight" or "bert\.embeddings\.LayerNorm\.gamma"/,
    );
  });

  test('a tensor of the wrong shape: the message names the tensor and both shapes', async () => {
    const dir = await derive(BERT, {
      extra: {
        'bert.encoder.layer.2.attention.self.query.weight': {
          dtype: 'F32',
          shape: [40, 39],
          data: new Float32Array(40 * 39),
        },
      },
    });
    await expectBad(
      load(dir),
      new RegExp(
        /tensor "bert\.encoder\.layer\.2\.attention\.self\.query\.weight" has shape \[40, 39\]; /.source +
          /the config implies \[40, 40\]/.source,
      ),
    );
    // The config disagrees with the weights (here: the vocabulary size).
    await expectBad(
      load(await withConfig(GPT2, { vocab_size: 50000 })),
      /tensor "wte\.weight" has shape \[50257, 32\]; the config implies \[50000, 32\]/,
    );
    // A transposed GPT-2 Conv1D weight (nn.Linear layout [out, in] instead of [in, out]).
    const dir3 = await derive(GPT2, {
      extra: { 'h.0.attn.c_attn.weight': { dtype: 'F32', shape: [96, 32], data: new Float32Array(96 * 32) } },
    });
    await expectBad(
      load(dir3),
      /tensor "h\.0\.attn\.c_attn\.weight" has shape \[96, 32\]; the config implies \[32, 96\]/,
    );
  });

  test('a tensor of a non-float dtype', async () => {
    const dir = await derive(GPT2, { extra: { 'ln_f.bias': { dtype: 'I32', shape: [32], data: new Int32Array(32) } } });
    await expectBad(load(dir), /tensor "ln_f\.bias" has dtype I32; expected F32, F16 or BF16/);
  });
});

// ---- texts ------------------------------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('library: texts', () => {
  const model = loadedOnce((name: string) => loadModel(goldenModel(name)));

  test('GPT-2: text longer than its 256 positions is an error that says so; 256 tokens exactly is fine', async () => {
    const m = await model(GPT2);
    expect(m.dims.maxPositions).toBe(256);
    expect((await m.attention(words(256))).tokens).toHaveLength(256); // "the" + 255 × "Ġthe"
    await expectBad(m.attention(words(257)), /text is 257 tokens/, /at most 256 positions/, /truncate/);
    await expectBad(m.attention(words(200), { pair: words(100) }), /text is 300 tokens/, /at most 256 positions/);
  });

  test('GPT-2: with truncate: true the output has exactly 256 tokens, the first 256 of the text', async () => {
    const m = await model(GPT2);
    const a = await m.attention(words(300, 'cat'), { truncate: true });
    expect(a.tokens).toHaveLength(256);
    expect(a.inputIds).toHaveLength(256);
    expect(a.attention.dims).toEqual([2, 4, 256, 256]);
    expect(a.query!.dims).toEqual([2, 4, 256, 8]);
    expect(a.hiddenLast!.dims).toEqual([256, 32]);
    expect(a.tokens.slice(0, 2)).toEqual(['cat', 'Ġcat']);
    // Same numbers as the untruncated run of the first 256 tokens (causal: later tokens cannot matter).
    const b = await m.attention(words(256, 'cat'));
    expect(maxAbsDiff(a.attention.data, b.attention.data)).toBeLessThan(1e-6);
  });

  test(
    'BERT: text longer than its 512 positions is an error; with ' + 'truncate: 512 tokens, [CLS] first and [SEP] last',
    async () => {
      const m = await model(BERT);
      expect((await m.attention(words(510))).tokens).toHaveLength(512);
      await expectBad(m.attention(words(511)), /text is 513 tokens/, /at most 512 positions/);
      const a = await m.attention(words(600, 'cat'), { truncate: true });
      expect(a.tokens).toHaveLength(512);
      expect(a.tokens[0]).toBe('[CLS]');
      expect(a.tokens[511]).toBe('[SEP]');
      expect(a.tokens.slice(1, 511).every((t) => t === 'cat')).toBe(true);
      expect(a.inputIds![511]).toBe(102);
      expect(a.attention.dims).toEqual([3, 4, 512, 512]);
      expect(a.sentenceBStart).toBeNull();
      // Identical to the untruncated run of the same 512 tokens.
      const b = await m.attention(words(510, 'cat'));
      expect(b.tokens).toEqual(a.tokens);
      expect(maxAbsDiff(a.attention.data, b.attention.data)).toBeLessThan(1e-6);
    },
  );

  test('BERT: truncating a pair whose second text is long keeps [CLS] A [SEP] and ends with [SEP]', async () => {
    const m = await model(BERT);
    const a = await m.attention('the rug.', { pair: words(600, 'cat'), truncate: true });
    expect(a.tokens).toHaveLength(512);
    expect(a.tokens.slice(0, 6)).toEqual(['[CLS]', 'the', 'rug', '.', '[SEP]', 'cat']);
    expect(a.tokens[511]).toBe('[SEP]');
    expect(a.sentenceBStart).toBe(5);
  });

  test('truncating a pair with a long first text keeps the second text', async () => {
    const m = await model(BERT);
    const a = await m.attention(words(600, 'cat'), { pair: 'the rug.', truncate: true });
    expect(a.tokens).toHaveLength(512);
    expect(a.tokens.at(-1)).toBe('[SEP]');
    expect(a.sentenceBStart).not.toBeNull();
    expect(a.tokens.slice(-4)).toEqual(['the', 'rug', '.', '[SEP]']);
  });

  test('empty and whitespace-only texts (and pairs)', async () => {
    for (const name of [BERT, GPT2]) {
      const m = await model(name);
      for (const text of ['', ' ', '   \n\t  ', '\u00a0\u3000']) await expectBad(m.attention(text), /^text is empty$/);
      await expectBad(m.attention('The cat.', { pair: '' }), /second text of the pair is empty/);
      await expectBad(m.attention('The cat.', { pair: ' \n ' }), /second text of the pair is empty/);
    }
  });

  test('the same model still works after each of those errors', async () => {
    const golden = await readGoldenCase(join(SHARED, 'golden', 'cases', 'gpt2-tiny__cat_sat.safetensors'));
    const m = await model(GPT2);
    await expectBad(m.attention(''), /empty/);
    await expectBad(m.attention(words(400)), /positions/);
    const a = await m.attention(golden.text);
    expect(a.tokens).toEqual(golden.tokens);
    expect(maxAbsDiff(a.attention.data, golden.f32('attention'))).toBeLessThan(1e-4);
  });
});

// ---- nothing left broken -----------------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('library: after bad inputs', () => {
  test(
    'the same process loads a good model and extracts (golden ' + 'bert-tiny__cat_pair), also next to a failing load',
    async () => {
      const golden = await readGoldenCase(join(SHARED, 'golden', 'cases', 'bert-tiny__cat_pair.safetensors'));
      const broken = await derive(BERT, { rename: (n) => (n.endsWith('layer.2.output.dense.weight') ? null : n) });
      const [bad, good] = await Promise.allSettled([loadModel(broken), loadModel(goldenModel(BERT))]);
      expect(bad.status).toBe('rejected');
      expect(good.status).toBe('fulfilled');
      const m = (good as PromiseFulfilledResult<Model>).value;
      try {
        const a = await m.attention(golden.text, { pair: golden.textPair });
        expect(a.tokens).toEqual(golden.tokens);
        expect(maxAbsDiff(a.attention.data, golden.f32('attention'))).toBeLessThan(1e-4);
      } finally {
        await m.release();
      }
      const b = await attentionOf(goldenModel(BERT), golden.text, { pair: golden.textPair! });
      expect(maxAbsDiff(b.attention.data, golden.f32('attention'))).toBeLessThan(1e-4);
    },
  );
});

// ---- the CLI ------------------------------------------------------------------------------------------------

describe.skipIf(!HAVE_SHARED || !HAVE_CLI)('CLI: bad inputs exit 2 with one line', () => {
  let bert: string;
  let gpt2: string;
  beforeAll(() => {
    bert = goldenModel(BERT);
    gpt2 = goldenModel(GPT2);
  });

  test(
    'usage errors: unknown command, unknown option, missing --text / ' +
      '--out / --model, stray argument, option without value',
    async () => {
      expectCliError(
        await cli(['frobnicate', '--model', bert]),
        /^attnviz: unknown command "frobnicate" \(commands: [a-z, ]*\bextract\b[a-z, ]*\)$/,
      );
      await extractFails(bert, ['--bogus'], {}, /Unknown option '--bogus'/);
      const out = await tempDir('attnviz-out-');
      expectCliError(
        await cli(['extract', '--model', bert, '--out', join(out, 'a.safetensors')]),
        /^attnviz: missing --text$/,
      );
      expectCliError(await cli(['extract', '--model', bert, '--text', 'hi']), /^attnviz: missing --out$/);
      expectCliError(
        await cli(['extract', '--text', 'hi', '--out', join(out, 'a.safetensors')]),
        /^attnviz: missing --model$/,
      );
      expectCliError(await cli(['extract', 'stray', '--model', bert]), /Unexpected argument 'stray'/);
      expectCliError(await cli(['extract', '--model']), /Option '--model <value>' argument missing/);
      expectCliError(await cli(['extract', '--truncate=yes']), /'--truncate' does not take an argument/);
      expect(await readdir(out)).toEqual([]);
    },
  );

  test('--debug prints the stack (and still exits 2)', async () => {
    const r = await cli([
      'extract',
      '--model',
      './no/such/dir',
      '--text',
      'hi',
      '--out',
      join(await tempDir(), 'o.safetensors'),
      '--debug',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith('attnviz: AttnvizError: ./no/such/dir: no such file or folder')).toBe(true);
    expect(r.stderr).toContain('    at ');
    const r2 = await cli(['frobnicate', '--debug']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('unknown command "frobnicate"');
    expect(r2.stderr).toContain('    at ');
  });

  test(
    'model folder: missing config.json, missing weights, missing ' +
      'tokenizer, config not JSON, missing field, unknown model_type',
    async () => {
      await extractFails(await derive(BERT, { omit: ['config.json'] }), [], {}, /no config\.json/);
      await extractFails(await derive(BERT, { omit: ['model.safetensors'] }), [], {}, /no weights/);
      await extractFails(
        await derive(BERT, { dropTokenizerJson: true, omit: ['vocab.txt'] }),
        [],
        {},
        /no tokenizer/,
        /vocab\.txt/,
      );
      await extractFails(await withFile(GPT2, 'config.json', '{not json'), [], {}, /config\.json: not valid JSON/);
      await extractFails(await withConfig(BERT, { model_type: undefined }), [], {}, /missing field "model_type"/);
      await extractFails(
        await withConfig(GPT2, { model_type: 'xlnet' }),
        [],
        {},
        /model_type "xlnet" is not supported \(supported: bert, gpt2/,
      );
    },
  );

  test('with --debug the same errors print a stack', async () => {
    const r = await cli([
      'extract',
      '--model',
      await withConfig(GPT2, { model_type: 'xlnet' }),
      '--text',
      'hi',
      '--out',
      join(await tempDir(), 'o.safetensors'),
      '--debug',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^attnviz: AttnvizError: .*model_type "xlnet" is not supported/);
    expect(r.stderr).toContain('    at ');
  });

  test('hostile safetensors: huge header length, header not JSON, offsets out of range, truncated file', async () => {
    await extractFails(
      await withFile(GPT2, 'model.safetensors', safetensorsImage('{}', new Uint8Array(64), 2n ** 40n)),
      [],
      {},
      /header length 1099511627776 runs past the end/,
    );
    await extractFails(
      await withFile(GPT2, 'model.safetensors', safetensorsImage('not json at all')),
      [],
      {},
      /header is not valid JSON/,
    );
    const dir = await derive(GPT2);
    await mutateHeader(dir, (h, size) => {
      tensorOf(h, 'wpe.weight').data_offsets = [size, size + 256 * 32 * 4];
    });
    await extractFails(dir, [], {}, /tensor "wpe\.weight" has data_offsets .* outside the file's/);
    const bytes = await readFile(join(gpt2, 'model.safetensors'));
    await extractFails(
      await withFile(GPT2, 'model.safetensors', bytes.subarray(0, bytes.length >> 1)),
      [],
      {},
      /\(truncated or corrupt file\)/,
    );
  });

  test('a tensor missing, a tensor of the wrong shape', async () => {
    await extractFails(
      await derive(GPT2, { rename: (n) => (n === 'h.0.attn.c_attn.weight' ? null : n) }),
      [],
      {},
      /missing tensor "h\.0\.attn\.c_attn\.weight"/,
    );
    await extractFails(
      await withConfig(GPT2, { n_positions: 300, n_ctx: 300 }),
      [],
      {},
      /tensor "wpe\.weight" has shape \[256, 32\]; the config implies \[300, 32\]/,
    );
  });

  test('text too long, empty, whitespace-only; empty pair', async () => {
    await extractFails(gpt2, ['--text', words(300)], {}, /text is 300 tokens/, /at most 256 positions/, /--truncate/);
    await extractFails(gpt2, ['--text', ''], {}, /^attnviz: text is empty$/);
    await extractFails(bert, ['--text', ' \t\n '], {}, /^attnviz: text is empty$/);
    await extractFails(bert, ['--text', 'The cat.', '--pair', '  '], {}, /second text of the pair is empty/);
  });

  test('nonexistent folder; hub id not cached with HF_HUB_OFFLINE=1; empty --model', async () => {
    await extractFails(
      './no/such/dir',
      [],
      {},
      /^attnviz: \.\/no\/such\/dir: no such file or folder, and not a hub id/,
    );
    const cache = await tempDir('attnviz-empty-cache-');
    await extractFails(
      'nobody/no-such-model',
      [],
      { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: cache },
      /"nobody\/no-such-model" is not in the Hugging Face cache/,
      /HF_HUB_OFFLINE/,
    );
    expect(await readdir(cache)).toEqual([]);
    await extractFails('', [], {}, /no model given/);
  });

  test(
    '--truncate: exactly max positions tokens in the written ' + 'file (GPT-2 256; BERT 512 ending in [SEP])',
    async () => {
      const out = await tempDir('attnviz-out-');
      const g = await cli([
        'extract',
        '--model',
        gpt2,
        '--text',
        words(300),
        '--truncate',
        '--out',
        join(out, 'g.safetensors'),
      ]);
      expect(g.code, g.stderr).toBe(0);
      expect(g.stderr).toMatch(/wrote .*g\.safetensors: 2 layers × 4 heads × 256 tokens/);
      const ga = await readAttentionFile(join(out, 'g.safetensors'));
      expect(ga.tokens).toHaveLength(256);
      expect(ga.attention.dims).toEqual([2, 4, 256, 256]);
      const b = await cli([
        'extract',
        '--model',
        bert,
        '--text',
        words(700),
        '--truncate',
        '--out',
        join(out, 'b.safetensors'),
      ]);
      expect(b.code, b.stderr).toBe(0);
      const ba = await readAttentionFile(join(out, 'b.safetensors'));
      expect(ba.tokens).toHaveLength(512);
      expect(ba.tokens[0]).toBe('[CLS]');
      expect(ba.tokens[511]).toBe('[SEP]');
      expect((await readdir(out)).sort()).toEqual(['b.safetensors', 'g.safetensors']); // no .tmp left
    },
  );

  test('a failed extract leaves an existing output file untouched, and no .tmp', async () => {
    const out = await tempDir('attnviz-out-');
    const file = join(out, 'keep.safetensors');
    await writeFile(file, 'previous contents');
    const r = await cli(['extract', '--model', gpt2, '--text', words(300), '--out', file]);
    expectCliError(r, /positions/);
    expect(await readFile(file, 'utf8')).toBe('previous contents');
    expect(await readdir(out)).toEqual(['keep.safetensors']);
  });

  test('an output path that cannot be written leaves no .tmp behind', async () => {
    const out = await tempDir('attnviz-out-');
    await mkdir(join(out, 'a-folder'));
    const r1 = await cli(['extract', '--model', gpt2, '--text', 'hi', '--out', join(out, 'a-folder')]);
    expect(r1.code).not.toBe(0);
    const r2 = await cli(['extract', '--model', gpt2, '--text', 'hi', '--out', join(out, 'missing', 'o.safetensors')]);
    expect(r2.code).not.toBe(0);
    expect(await readdir(out)).toEqual(['a-folder']);
    expect(await readdir(join(out, 'a-folder'))).toEqual([]);
  });

  test('an --out in a missing folder / on a folder is a bad input: exit 2, message names the --out path', async () => {
    const out = await tempDir('attnviz-out-');
    const target = join(out, 'missing', 'o.safetensors');
    const r = await cli(['extract', '--model', gpt2, '--text', 'hi', '--out', target]);
    expectCliError(r, target);
    expect(r.stderr).not.toContain('.tmp');
    await mkdir(join(out, 'a-folder'));
    expectCliError(await cli(['extract', '--model', gpt2, '--text', 'hi', '--out', join(out, 'a-folder')]), /a-folder/);
  });

  test('control: a good extract exits 0 and writes only the output file', async () => {
    const out = await tempDir('attnviz-out-');
    const r = await cli([
      'extract',
      '--model',
      bert,
      '--text',
      'The cat sat on the mat.',
      '--pair',
      'The cat lay on the rug.',
      '--out',
      join(out, 'cat.safetensors'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(await readdir(out)).toEqual(['cat.safetensors']);
    const golden = await readGoldenCase(join(SHARED, 'golden', 'cases', 'bert-tiny__cat_pair.safetensors'));
    const a = await readAttentionFile(join(out, 'cat.safetensors'));
    expect(a.tokens).toEqual(golden.tokens);
    expect(maxAbsDiff(a.attention.data, golden.f32('attention'))).toBeLessThan(1e-4);
  });
});
