/**
 * GGUF files (src/load/gguf.ts, gguf-tokenizer.ts, gguf-checkpoint.ts), written by the small GGUF writer in
 * gguf-writer.ts (the second-wave architectures: gguf-families.test.ts).
 *
 * - Dequantization: F32, F16, Q8_0, Q4_0, Q4_K and Q6_K blocks packed here from chosen integer codes and
 *   scales (Q4_K / Q6_K with the bit packing of ggml's quantize_row_*_ref, the encoder side), compared with
 *   values computed by hand from the format's definition.
 * - Against an independent reference: llama-tiny-mha written as a GGUF file (q/k rows un-permuted to Meta's
 *   order, as llama.cpp's converter stores them) must reproduce the golden case (llama2.c model.py): tokens
 *   and ids (the file's own vocabulary, encoded as llama2.c's encode()), attention, q/k in llama2.c's
 *   interleaved layout (`query_llama2c`, `key_llama2c`), hidden_last and logits. The tokenizer of
 *   stories260K.gguf (the same 512-piece vocabulary) matches every golden tokenization.
 * - Bad files: truncated anywhere, unknown or unsupported tensor types (named), missing metadata (named),
 *   wrong architecture or tokenizer, misaligned or overlapping data, unknown tensor names.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import type { Attention } from '../src/core/attention.js';
import { Model } from '../src/models/checkpoint-model.js';
import { dequantize, GGML, readGguf, readTensorF32, type GgufFile } from '../src/load/gguf.js';
import { type BlockValues, packedBytes, packMatrix } from '../src/load/gguf-quant.js';
import { ggufTokenizer } from '../src/load/gguf-tokenizer.js';
import { f16BitsToF32, f32ToF16Bits, readWeights, tensorToF32 } from './checkpoints.js';
import {
  bytesOf,
  dequantizedCopy,
  f16Bytes,
  f32Bytes,
  gguf,
  toMeta,
  type GgufSpec,
  type MetaValue,
  type TensorSpec,
} from './gguf-writer.js';
import {
  goldenCases,
  goldenModel,
  HAVE_SHARED,
  maxAbs,
  maxAbsDiff,
  present,
  readGoldenCase,
  SHARED,
} from './shared.js';
import { softmaxError } from './reference.js';
import { openGgufModel } from '../src/load/gguf-checkpoint.js';
import { ggufFamily } from '../src/graph/families.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { INPUTS, outputNames } from '../src/graph/family.js';
import { causalMask } from '../src/models/feeds.js';
import { DirectSession } from '../src/runtime/ort-direct.js';
import { type Feed, GroupedSession, Session } from '../src/runtime/session.js';

const STORIES = join(SHARED, 'models', 'stories260K', 'stories260K.gguf');
const HAVE_STORIES = present(existsSync(STORIES), STORIES, 'the stories260K tests');

// ---- quantized blocks, packed from integer codes ----------------------------------------------------------

/** Q8_0 block: f16 d, then 32 int8 codes. */
function q8_0Block(d: number, codes: number[]): Uint8Array {
  const b = Buffer.alloc(34);
  b.writeUInt16LE(f32ToF16Bits(d), 0);
  codes.forEach((c, j) => b.writeInt8(c, 2 + j));
  return b;
}

/** Q4_0 block: f16 d, then 16 bytes; value j < 16 is the low nibble of byte j, value 16 + j its high nibble. */
function q4_0Block(d: number, codes: number[]): Uint8Array {
  const b = Buffer.alloc(18);
  b.writeUInt16LE(f32ToF16Bits(d), 0);
  for (let j = 0; j < 16; j++) b[2 + j] = codes[j] | (codes[j + 16] << 4);
  return b;
}

/**
 * Q4_K super-block of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins (quantize_row_q4_K_ref's packing), 128 bytes
 * of nibbles.
 */
function q4_KBlock(d: number, dmin: number, scales: number[], mins: number[], codes: number[]): Uint8Array {
  const b = Buffer.alloc(144);
  b.writeUInt16LE(f32ToF16Bits(d), 0);
  b.writeUInt16LE(f32ToF16Bits(dmin), 2);
  const s = b.subarray(4, 16);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      s[j] = scales[j];
      s[j + 4] = mins[j];
    } else {
      s[j + 4] = (scales[j] & 0xf) | ((mins[j] & 0xf) << 4);
      s[j - 4] |= (scales[j] >> 4) << 6;
      s[j] |= (mins[j] >> 4) << 6;
    }
  }
  // 64 values per 32 bytes: the first 32 in the low nibbles, the next 32 in the high nibbles.
  for (let chunk = 0; chunk < 4; chunk++) {
    for (let l = 0; l < 32; l++) b[16 + chunk * 32 + l] = codes[chunk * 64 + l] | (codes[chunk * 64 + 32 + l] << 4);
  }
  return b;
}

/**
 * Q6_K super-block of 256: ql[128], qh[64], int8 scales[16], f16 d (quantize_row_q6_K_ref's packing of 6-bit codes).
 */
function q6_KBlock(d: number, scales: number[], codes: number[]): Uint8Array {
  const b = Buffer.alloc(210);
  for (let half = 0; half < 2; half++) {
    const L = codes.slice(half * 128, half * 128 + 128);
    const ql = 64 * half,
      qh = 128 + 32 * half;
    for (let l = 0; l < 32; l++) {
      b[ql + l] = (L[l] & 0xf) | ((L[l + 64] & 0xf) << 4);
      b[ql + l + 32] = (L[l + 32] & 0xf) | ((L[l + 96] & 0xf) << 4);
      b[qh + l] = (L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) | ((L[l + 96] >> 4) << 6);
    }
  }
  scales.forEach((sc, i) => b.writeInt8(sc, 192 + i));
  b.writeUInt16LE(f32ToF16Bits(d), 208);
  return b;
}

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

// ---- files on disk ----------------------------------------------------------------------------------------

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'attnviz-gguf-test-'));
});
const opened: Model[] = [];
afterAll(async () => {
  await Promise.all(opened.splice(0).map((m) => m.release()));
  await rm(scratch, { recursive: true, force: true });
});
let fileCount = 0;
async function file(bytes: Uint8Array, name = `m${fileCount++}.gguf`): Promise<string> {
  const path = join(scratch, name);
  await writeFile(path, bytes);
  return path;
}
async function open(path: string, options: Parameters<typeof Model.load>[1] = {}): Promise<Model> {
  const m = await Model.load(path, options);
  opened.push(m);
  return m;
}

/** Awaits `p`, which must reject with a one-line AttnvizError matching `pattern`. */
async function expectBad(p: Promise<unknown> | (() => unknown), pattern: RegExp): Promise<void> {
  const run = typeof p === 'function' ? Promise.resolve().then(p) : p;
  const e = await run.then(
    async (m) => {
      if (m && typeof m === 'object' && 'release' in m) await (m as Model).release();
      throw new Error(`expected an error matching ${pattern}`);
    },
    (error: Error) => error,
  );
  expect(e.name, e.message).toBe('AttnvizError');
  expect(e.message).not.toMatch(/\n/);
  expect(e.message).toMatch(pattern);
}

// ---- dequantization ---------------------------------------------------------------------------------------

describe('dequantize', () => {
  test('F32, F16 (normal, subnormal, infinite) and BF16', () => {
    expect([...dequantize(GGML.BF16, bytesOf(Uint16Array.from([0x3f80, 0xc000, 0x3fc0])), 3)]).toEqual([1, -2, 1.5]);
    expect([...dequantize(GGML.F32, f32Bytes([1.5, -2, 3e-8]), 3)]).toEqual([1.5, -2, Math.fround(3e-8)]);
    const bits = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x8000];
    expect([...dequantize(GGML.F16, bytesOf(Uint16Array.from(bits)), bits.length)]).toEqual([
      1,
      -2,
      0.5,
      65504,
      2 ** -24,
      Infinity,
      -0,
    ]);
  });

  test('Q8_0: code × d, two blocks', () => {
    const a = range(32, (j) => ((j * 37) % 256) - 128),
      b = range(32, (j) => 127 - j);
    const y = dequantize(GGML.Q8_0, Buffer.concat([q8_0Block(0.5, a), q8_0Block(-0.25, b)]), 64);
    expect([...y]).toEqual([...a.map((c) => c * 0.5), ...b.map((c) => c * -0.25)]);
  });

  test('Q4_0: (code − 8) × d', () => {
    const codes = range(32, (j) => (j * 5 + 3) % 16);
    expect([...dequantize(GGML.Q4_0, q4_0Block(0.25, codes), 32)]).toEqual(codes.map((c) => (c - 8) * 0.25));
  });

  test(
    'Q4_K: d·scale·code − dmin·min per sub-block of 32, ' + 'scales and mins up to 63 (high bits packed apart)',
    () => {
      const scales = [1, 2, 3, 63, 17, 33, 48, 5],
        mins = [0, 1, 2, 3, 40, 63, 21, 9];
      const codes = range(256, (i) => (i * 7 + (i >> 5)) % 16);
      const codes2 = range(256, (i) => 15 - (i % 16));
      const y = dequantize(
        GGML.Q4_K,
        Buffer.concat([
          q4_KBlock(0.5, 0.25, scales, mins, codes),
          q4_KBlock(
            2,
            1,
            mins.map((m) => 63 - m),
            scales,
            codes2,
          ),
        ]),
        512,
      );
      const expected = [
        ...codes.map((c, i) => 0.5 * scales[i >> 5] * c - 0.25 * mins[i >> 5]),
        ...codes2.map((c, i) => 2 * (63 - mins[i >> 5]) * c - 1 * scales[i >> 5]),
      ];
      expect(maxAbsDiff(y, expected)).toBe(0);
    },
  );

  test('Q6_K: d·scale·(code − 32) per group of 16, int8 scales', () => {
    const scales = [-128, -3, 1, 2, 5, 7, 11, 13, 17, 19, 23, 29, 31, 64, 100, 127];
    const codes = range(256, (i) => (i * 29 + 3) % 64);
    const y = dequantize(GGML.Q6_K, q6_KBlock(0.125, scales, codes), 256);
    expect(
      maxAbsDiff(
        y,
        codes.map((c, i) => 0.125 * scales[i >> 4] * (c - 32)),
      ),
    ).toBe(0);
  });

  test('a GGUF file: metadata of every type, tensors read through their offsets, PyTorch shapes', async () => {
    const codes = range(256, (i) => i % 16);
    const path = await file(
      gguf({
        version: 2,
        metadata: [
          ['a.u32', { u32: 7 }],
          ['a.i32', { i32: -7 }],
          ['a.u64', { u64: 2 ** 40 }],
          ['a.f32', { f32: 0.5 }],
          ['a.bool', { bool: true }],
          ['a.str', { str: 'héllo' }],
          ['a.strs', { strs: ['x', 'yz'] }],
          ['a.f32s', { f32s: [1, 2] }],
          ['general.alignment', { u32: 64 }],
        ],
        alignment: 64,
        tensors: [
          { name: 'f', ne: [3, 2], type: GGML.F32, data: f32Bytes([1, 2, 3, 4, 5, 6]) },
          { name: 'h', ne: [2], type: GGML.F16, data: f16Bytes([0.5, -1]) },
          {
            name: 'k',
            ne: [256, 2],
            type: GGML.Q4_K,
            data: Buffer.concat([
              q4_KBlock(
                1,
                0,
                range(8, () => 1),
                range(8, () => 0),
                codes,
              ),
              q4_KBlock(
                1,
                1,
                range(8, () => 2),
                range(8, () => 1),
                codes,
              ),
            ]),
          },
        ],
      }),
    );
    const g = readGguf(path);
    expect(g.version).toBe(2);
    expect(Object.fromEntries(g.metadata)).toEqual({
      'a.u32': 7,
      'a.i32': -7,
      'a.u64': 2 ** 40,
      'a.f32': 0.5,
      'a.bool': true,
      'a.str': 'héllo',
      'a.strs': ['x', 'yz'],
      'a.f32s': [1, 2],
      'general.alignment': 64,
    });
    expect(g.dataStart % 64).toBe(0);
    const t = (name: string) => g.tensors.get(name)!;
    expect(t('f').shape).toEqual([2, 3]);
    expect([...readTensorF32(g, t('f'))]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...readTensorF32(g, t('h'))]).toEqual([0.5, -1]);
    expect([...readTensorF32(g, t('k'))]).toEqual([...codes, ...codes.map((c) => 2 * c - 1)]);
  });
});

// ---- bad files --------------------------------------------------------------------------------------------

/** A minimal llama GGUF (hidden 32, 1 layer, 2 heads, vocab 4) whose parts each test can change. */
function tinyLlama(
  change: {
    metadata?: (m: [string, MetaValue][]) => [string, MetaValue][];
    tensors?: (t: TensorSpec[]) => TensorSpec[];
  } = {},
): Buffer {
  const D = 32,
    F = 64,
    V = 4;
  const m = (name: string, ne: number[], fill = 0.01) => ({
    name,
    ne,
    type: GGML.F32,
    data: f32Bytes(
      range(
        ne.reduce((a, b) => a * b),
        (i) => Math.sin(i) * fill,
      ),
    ),
  });
  const metadata: [string, MetaValue][] = [
    ['general.architecture', { str: 'llama' }],
    ['llama.embedding_length', { u32: D }],
    ['llama.block_count', { u32: 1 }],
    ['llama.feed_forward_length', { u32: F }],
    ['llama.attention.head_count', { u32: 2 }],
    ['llama.context_length', { u32: 64 }],
    ['llama.attention.layer_norm_rms_epsilon', { f32: 1e-5 }],
    ['tokenizer.ggml.model', { str: 'llama' }],
    ['tokenizer.ggml.tokens', { strs: ['<unk>', '<s>', '</s>', '▁'] }],
    ['tokenizer.ggml.scores', { f32s: [0, 0, 0, -1] }],
    ['tokenizer.ggml.token_type', { i32s: [2, 3, 3, 1] }],
    ['tokenizer.ggml.bos_token_id', { u32: 1 }],
    ['tokenizer.ggml.eos_token_id', { u32: 2 }],
  ];
  const tensors: TensorSpec[] = [
    m('token_embd.weight', [D, V], 1),
    m('output_norm.weight', [D], 1),
    m('blk.0.attn_norm.weight', [D], 1),
    m('blk.0.attn_q.weight', [D, D]),
    m('blk.0.attn_k.weight', [D, D]),
    m('blk.0.attn_v.weight', [D, D]),
    m('blk.0.attn_output.weight', [D, D]),
    m('blk.0.ffn_norm.weight', [D], 1),
    m('blk.0.ffn_gate.weight', [D, F]),
    m('blk.0.ffn_up.weight', [D, F]),
    m('blk.0.ffn_down.weight', [F, D]),
  ];
  return gguf({ metadata: change.metadata?.(metadata) ?? metadata, tensors: change.tensors?.(tensors) ?? tensors });
}

describe('bad GGUF files', () => {
  test('the tiny llama file itself loads and runs', async () => {
    const m = await open(await file(tinyLlama()));
    const g = await m.generate(null, { maxNewTokens: 2, temperature: 0 });
    expect(g.attention!.attention.dims).toEqual([1, 2, g.ids.length, g.ids.length]);
    expect(g.attention!.tokens[0]).toBe('<s>');
  });

  test('rope_freqs (Llama 3.1+ scaling as llama.cpp stores it) divides each RoPE frequency', async () => {
    const halved = tinyLlama({
      tensors: (t) => [...t, { name: 'rope_freqs.weight', ne: [8], type: GGML.F32, data: f32Bytes(range(8, () => 2)) }],
    });
    const linear = tinyLlama({
      metadata: (m) => [
        ...m,
        ['llama.rope.scaling.type', { str: 'linear' }],
        ['llama.rope.scaling.factor', { f32: 2 }],
      ],
    });
    const run = async (bytes: Buffer) =>
      (await (await open(await file(bytes))).generate(null, { maxNewTokens: 6, temperature: 0 })).attention!;
    const [a, b, plain] = [await run(halved), await run(linear), await run(tinyLlama())];
    expect(a.tokens).toEqual(b.tokens);
    expect(maxAbsDiff(a.query!.data, b.query!.data)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.query!.data, plain.query!.data)).toBeGreaterThan(1e-4);
  });

  test('truncated anywhere: header, metadata, tensor infos, tensor data', async () => {
    const whole = tinyLlama();
    const dataStart = readGguf(await file(whole)).dataStart;
    for (const cut of [3, 20, 40, 300, dataStart - 10, dataStart + 100, whole.length - 1]) {
      await expectBad(Model.load(await file(whole.subarray(0, cut))), /truncated|too short/);
    }
  });

  test('not GGUF, version 1, big-endian', async () => {
    await expectBad(Model.load(await file(Buffer.from('PK\x03\x04 not a gguf file at all...'))), /not a GGUF file/);
    const v1 = tinyLlama();
    v1.writeUInt32LE(1, 4);
    await expectBad(Model.load(await file(v1)), /GGUF version 1 is not supported \(only 2 and 3\)/);
    const big = tinyLlama();
    big.writeUInt32BE(3, 4);
    await expectBad(Model.load(await file(big)), /big-endian GGUF is not supported/);
  });

  test('a tensor type with no path is named with the tensor', async () => {
    const q2k = tinyLlama({
      tensors: (t) =>
        t.map((x) =>
          x.name === 'blk.0.ffn_down.weight'
            ? { ...x, ne: [256, 8], type: GGML.Q2_K, data: new Uint8Array(84 * 8) }
            : x,
        ),
    });
    await expectBad(
      Model.load(await file(q2k)),
      new RegExp(
        'tensor "blk\\.0\\.ffn_down\\.weight" has type Q2_K, which attnviz cannot run ' +
          '\\(supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, ' +
          'Q4_K, Q5_K, Q6_K; quantized types for matrices\\)',
      ),
    );
    const norm = tinyLlama({
      tensors: (t) =>
        t.map((x) => (x.name === 'output_norm.weight' ? { ...x, type: GGML.Q8_0, data: new Uint8Array(34) } : x)),
    });
    await expectBad(
      Model.load(await file(norm)),
      /tensor "output_norm\.weight" has type Q8_0 on a 1-dimensional tensor, which attnviz cannot run/,
    );
    const unknown = tinyLlama({
      tensors: (t) => t.map((x) => (x.name === 'output_norm.weight' ? { ...x, type: 99 } : x)),
    });
    await expectBad(Model.load(await file(unknown)), /tensor "output_norm\.weight" has type type 99/);
  });

  test.each([
    'llama.block_count',
    'llama.embedding_length',
    'llama.attention.head_count',
    'llama.feed_forward_length',
    'llama.context_length',
    'llama.attention.layer_norm_rms_epsilon',
    'general.architecture',
    'tokenizer.ggml.tokens',
    'tokenizer.ggml.scores',
  ])('missing metadata %s is named', async (key) => {
    const bad = tinyLlama({ metadata: (m) => m.filter(([k]) => k !== key) });
    await expectBad(Model.load(await file(bad)), new RegExp(`missing metadata "${key.replaceAll('.', '\\.')}"`));
  });

  test('wrong values: architecture, tokenizer model, rope dimensions, a string where a number goes', async () => {
    const set = (key: string, value: MetaValue) =>
      tinyLlama({ metadata: (m) => m.map(([k, v]) => [k, k === key ? value : v]) });
    await expectBad(
      Model.load(await file(set('general.architecture', { str: 'gpt2' }))),
      /architecture "gpt2" is not supported \(only llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3, olmo2, bl/,
    );
    await expectBad(
      Model.load(await file(set('tokenizer.ggml.model', { str: 'rwkv' }))),
      /tokenizer model "rwkv" is not supported/,
    );
    await expectBad(
      Model.load(await file(tinyLlama({ metadata: (m) => [...m, ['llama.rope.dimension_count', { u32: 8 }]] }))),
      /rope\.dimension_count 8 differs from the head size 16/,
    );
    await expectBad(
      Model.load(await file(set('llama.block_count', { str: 'two' }))),
      /metadata "llama\.block_count" must be a positive number, got "two"/,
    );
    await expectBad(
      Model.load(await file(set('llama.block_count', { u32: 2 }))),
      /missing tensor "model\.layers\.1\.input_layernorm\.weight"/,
    );
  });

  test('tensor table: misaligned or overlapping data, unknown names, shapes against the config', async () => {
    const misaligned = gguf({
      metadata: [],
      tensors: [{ name: 'a', ne: [4], type: GGML.F32, data: f32Bytes([1, 2, 3, 4]) }],
      offsets: { 0: 4 },
    });
    await expectBad(() => readGguf(join(scratch, 'x')), /cannot open/);
    await expectBad(Model.load(await file(misaligned)), /data offset 4 is not a multiple of the alignment 32/);
    const two = (offsets: Record<number, number>) =>
      gguf({
        metadata: [],
        offsets,
        tensors: [
          { name: 'a', ne: [16], type: GGML.F32, data: f32Bytes(range(16, (i) => i)) },
          { name: 'b', ne: [16], type: GGML.F32, data: f32Bytes(range(16, (i) => i)) },
        ],
      });
    await expectBad(Model.load(await file(two({ 1: 32 }))), /tensors "a" and "b" overlap/);
    const extra = tinyLlama({
      tensors: (t) => [
        ...t,
        { name: 'blk.0.ffn_gate_exps.weight', ne: [4], type: GGML.F32, data: f32Bytes([0, 0, 0, 0]) },
      ],
    });
    await expectBad(
      Model.load(await file(extra)),
      /tensor "blk\.0\.ffn_gate_exps\.weight" is not part of a llama model as attnviz reads it/,
    );
    const ropeFreqs = tinyLlama({
      tensors: (t) => [...t, { name: 'rope_freqs.weight', ne: [4], type: GGML.F32, data: f32Bytes(range(4, () => 1)) }],
    });
    await expectBad(Model.load(await file(ropeFreqs)), /tensor "rope_freqs\.weight" must be F32 \[8\]/);
    const wrongShape = tinyLlama({
      tensors: (t) =>
        t.map((x) =>
          x.name === 'blk.0.attn_k.weight' ? { ...x, ne: [32, 16], data: x.data.subarray(0, 32 * 16 * 4) } : x,
        ),
    });
    await expectBad(
      Model.load(await file(wrongShape)),
      /k_proj\.weight" has shape \[16, 32\]; the config implies \[32, 32\]/,
    );
  });

  test('a load that fails leaves no temporary folder behind', async () => {
    const { readdir } = await import('node:fs/promises');
    const before = (await readdir(tmpdir())).filter(
      (f) => f.startsWith('attnviz-gguf-') && !f.startsWith('attnviz-gguf-test-'),
    ).length;
    const bad = tinyLlama({ metadata: (m) => m.map(([k, v]) => [k, k === 'llama.block_count' ? { u32: 2 } : v]) });
    await expectBad(Model.load(await file(bad)), /missing tensor/);
    const after = (await readdir(tmpdir())).filter(
      (f) => f.startsWith('attnviz-gguf-') && !f.startsWith('attnviz-gguf-test-'),
    ).length;
    expect(after).toBeLessThanOrEqual(before);
  });
});

// ---- llama-tiny-mha as GGUF, against the golden data ------------------------------------------------------

/** Meta's row order from HF's: HF row h·d + a·d/2 + b holds Meta row h·d + 2b + a (golden README). */
function unpermute(w: Float32Array, heads: number, d: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let a = 0; a < 2; a++) {
      for (let b = 0; b < d / 2; b++)
        out.set(
          w.subarray((h * d + a * (d / 2) + b) * cols, (h * d + a * (d / 2) + b + 1) * cols),
          (h * d + 2 * b + a) * cols,
        );
    }
  }
  return out;
}

/** Q8_0 codes of a row-major tensor, block by block (ggml's quantize_row_q8_0_ref), and the values they stand for. */
function quantizeQ8_0(x: Float32Array): { bytes: Uint8Array; values: Float32Array } {
  const blocks: Uint8Array[] = [],
    values = new Float32Array(x.length);
  for (let b = 0; b < x.length / 32; b++) {
    const v = x.subarray(b * 32, b * 32 + 32);
    const d = f16BitsToF32(f32ToF16Bits(Math.fround(maxAbs(v) / 127)));
    const codes = Array.from(v, (t) => (d ? Math.round(t / d) : 0));
    blocks.push(q8_0Block(d, codes));
    codes.forEach((c, j) => (values[b * 32 + j] = c * d));
  }
  return { bytes: Buffer.concat(blocks), values };
}

type TensorDType = 'F32' | 'F16' | 'Q8_0';

/**
 * llama-tiny-mha as a GGUF file; `types` picks the storage of some tensors. Returns the file and the weights it holds,
 * as F32.
 */
async function llamaTinyGguf(
  types: (ggufName: string) => TensorDType = () => 'F32',
): Promise<{ path: string; holds: Map<string, Float32Array> }> {
  const stories = readGguf(STORIES);
  const meta = (key: string) => stories.metadata.get(key) as never;
  const { tensors } = await readWeights(goldenModel('llama-tiny-mha'));
  const w = (name: string) => tensorToF32(tensors.get(name)!);
  const D = 48,
    d = 12,
    H = 4;
  const specs: TensorSpec[] = [];
  const holds = new Map<string, Float32Array>();
  const add = (name: string, torchShape: number[], values: Float32Array) => {
    const type = torchShape.length === 2 ? types(name) : 'F32';
    let data: Uint8Array;
    if (type === 'Q8_0') {
      const q = quantizeQ8_0(values);
      [data, values] = [q.bytes, q.values];
    } else if (type === 'F16') {
      data = f16Bytes(values);
      values = values.map((v) => f16BitsToF32(f32ToF16Bits(v)));
    } else data = f32Bytes(values);
    holds.set(name, values);
    specs.push({
      name,
      ne: [...torchShape].reverse(),
      type: { F32: GGML.F32, F16: GGML.F16, Q8_0: GGML.Q8_0 }[type],
      data,
    });
  };
  add('token_embd.weight', [512, D], w('model.embed_tokens.weight'));
  add('output_norm.weight', [D], w('model.norm.weight'));
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}`;
    add(`blk.${l}.attn_norm.weight`, [D], w(`${p}.input_layernorm.weight`));
    add(`blk.${l}.attn_q.weight`, [D, D], unpermute(w(`${p}.self_attn.q_proj.weight`), H, d, D));
    add(`blk.${l}.attn_k.weight`, [D, D], unpermute(w(`${p}.self_attn.k_proj.weight`), H, d, D));
    add(`blk.${l}.attn_v.weight`, [D, D], w(`${p}.self_attn.v_proj.weight`));
    add(`blk.${l}.attn_output.weight`, [D, D], w(`${p}.self_attn.o_proj.weight`));
    add(`blk.${l}.ffn_norm.weight`, [D], w(`${p}.post_attention_layernorm.weight`));
    add(`blk.${l}.ffn_gate.weight`, [128, D], w(`${p}.mlp.gate_proj.weight`));
    add(`blk.${l}.ffn_up.weight`, [128, D], w(`${p}.mlp.up_proj.weight`));
    add(`blk.${l}.ffn_down.weight`, [D, 128], w(`${p}.mlp.down_proj.weight`));
  }
  const bytes = gguf({
    metadata: [
      ['general.architecture', { str: 'llama' }],
      ['llama.embedding_length', { u32: D }],
      ['llama.block_count', { u32: 2 }],
      ['llama.feed_forward_length', { u32: 128 }],
      ['llama.attention.head_count', { u32: H }],
      ['llama.attention.head_count_kv', { u32: H }],
      ['llama.context_length', { u32: 512 }],
      ['llama.attention.layer_norm_rms_epsilon', { f32: 1e-6 }],
      ['llama.rope.freq_base', { f32: 500000 }],
      ['llama.rope.dimension_count', { u32: d }],
      ['tokenizer.ggml.model', { str: 'llama' }],
      ['tokenizer.ggml.tokens', { strs: meta('tokenizer.ggml.tokens') }],
      ['tokenizer.ggml.scores', { f32s: meta('tokenizer.ggml.scores') }],
      ['tokenizer.ggml.token_type', { i32s: meta('tokenizer.ggml.token_type') }],
      ['tokenizer.ggml.bos_token_id', { u32: 1 }],
      ['tokenizer.ggml.eos_token_id', { u32: 2 }],
    ],
    tensors: specs,
  });
  return { path: await file(bytes), holds };
}

describe.skipIf(!HAVE_SHARED || !HAVE_STORIES)('GGUF llama against the golden cases (llama2.c model.py)', () => {
  const files = goldenCases(['llama-tiny-mha']);

  test(
    'the stories260K tokenizer reproduces every golden ' + 'tokenization (llama2.c encode) and decodes back',
    async () => {
      const tokenizer = ggufTokenizer(readGguf(STORIES), 'stories260K.gguf');
      const { inputs } = JSON.parse(
        await readFile(join(SHARED, 'golden', 'cases', 'tokenization', 'llama-tiny-mha.json'), 'utf8'),
      ) as {
        inputs: { text: string; text_pair: string | null; ids: number[]; tokens: string[] }[];
      };
      expect(inputs.length).toBeGreaterThanOrEqual(9);
      for (const input of inputs) {
        const e = tokenizer.encode(input.text, input.text_pair);
        expect(e.tokens).toEqual(input.tokens);
        expect(e.ids).toEqual(input.ids);
        expect(tokenizer.decode(e.ids)).toBe(
          input.text_pair === null ? input.text : `${input.text} ${input.text_pair}`,
        );
      }
    },
  );

  test.each(files.map((f) => [f.split('/').pop()!, f]))(
    'F32 GGUF: %s, q/k in the interleaved layout',
    async (_, caseFile) => {
      const golden = await readGoldenCase(caseFile);
      const m = await open((await llamaTinyGguf()).path, { logits: 'all' });
      const a = await m.attention(golden.text, { pair: golden.textPair });
      expect(a.tokens).toEqual(golden.tokens);
      expect(a.inputIds).toEqual(golden.inputIds);
      expect(a.rotary).toBe('interleaved');
      expect(maxAbsDiff(a.attention.data, golden.f32('attention'))).toBeLessThan(1e-4);
      for (const [ours, name] of [
        [a.query!, 'query_llama2c'],
        [a.key!, 'key_llama2c'],
        [a.hiddenLast!, 'hidden_last'],
        [await m.logits(golden.text, { pair: golden.textPair }), 'logits'],
      ] as const) {
        const ref = golden.f32(name);
        expect(ours.dims, name).toEqual(golden.dims(name));
        expect(maxAbsDiff(ours.data, ref), name).toBeLessThan(
          (name === 'logits' ? 1e-3 : 1e-4) * Math.max(1, maxAbs(ref)),
        );
      }
    },
  );

  test('F16 and Q8_0 tensors compute what their values in F32 compute', async () => {
    const text = (await readGoldenCase(files.find((f) => f.includes('__fox'))!)).text;
    const mixed = await llamaTinyGguf((name) =>
      name.endsWith('ffn_down.weight') ? 'Q8_0' : name.includes('attn') ? 'F16' : 'F32',
    );
    // The same values, all stored as F32.
    const { tensors } = await readWeights(goldenModel('llama-tiny-mha'));
    expect(tensors.size).toBeGreaterThan(0);
    const asF32 = gguf({
      metadata: [...readGguf(mixed.path).metadata].map(([k, v]) => [k, toMeta(v)] as [string, MetaValue]),
      tensors: [...readGguf(mixed.path).tensors.values()].map((t) => ({
        name: t.name,
        ne: t.ne,
        type: GGML.F32,
        data: f32Bytes(mixed.holds.get(t.name)!),
      })),
    });
    const a = await (await open(mixed.path)).attention(text);
    const b = await (await open(await file(asF32))).attention(text);
    expect(maxAbsDiff(a.attention.data, b.attention.data)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.query!.data, b.query!.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(a.hiddenLast!.data, b.hiddenLast!.data)).toBeLessThan(1e-5);
  });
});

/** A parsed metadata value back to the writer's form (numbers as f32 or u32, lists by element type). */

// ---- stories260K.gguf -------------------------------------------------------------------------------------

describe.skipIf(!HAVE_STORIES)('stories260K.gguf', () => {
  test('header: GGUF v3, 48 F32 tensors, 5 layers of 8 query heads over 4 kv heads', () => {
    const g = readGguf(STORIES);
    expect(g.version).toBe(3);
    expect(g.tensors.size).toBe(48);
    expect([...g.tensors.values()].every((t) => t.typeName === 'F32')).toBe(true);
    expect(g.tensors.get('blk.0.attn_k.weight')!.shape).toEqual([32, 64]);
    expect(g.metadata.get('llama.attention.head_count_kv')).toBe(4);
  });

  test(
    'attention: GQA noted, interleaved q/k, causal rows summing to 1, ' +
      'softmax(q·kᵀ/√d) reproducing it; survives a file round trip',
    async () => {
      const m = await open(STORIES);
      const a = await m.attention('Lily and Tom went to the park to play with a big red ball.');
      expect(a.kvHeads).toBe(4);
      expect(a.rotary).toBe('interleaved');
      expectCausalInvariants(a, 5, 8, 8);
      // Query heads 2h and 2h + 1 read kv head h: the same keys.
      const T = a.tokens.length,
        size = T * 8;
      expect(maxAbsDiff(a.key!.data.subarray(2 * size, 3 * size), a.key!.data.subarray(3 * size, 4 * size))).toBe(0);
      const back = decodeAttentionFile(encodeAttentionFile(a), 'a.safetensors');
      expect(back.kvHeads).toBe(4);
      expect(back.rotary).toBe('interleaved');
    },
  );
});

function expectCausalInvariants(a: Attention, layers: number, heads: number, d: number): void {
  const T = a.tokens.length;
  expect(a.attention.dims).toEqual([layers, heads, T, T]);
  expect(a.query!.dims).toEqual([layers, heads, T, d]);
  const p = a.attention.data;
  let rowSum = 0,
    above = 0;
  for (let lh = 0; lh < layers * heads; lh++) {
    for (let i = 0; i < T; i++) {
      const row = p.subarray((lh * T + i) * T, (lh * T + i + 1) * T);
      rowSum = Math.max(rowSum, Math.abs(row.reduce((s, x) => s + x, 0) - 1));
      for (let j = i + 1; j < T; j++) above = Math.max(above, row[j]);
    }
  }
  expect(rowSum).toBeLessThan(1e-5);
  expect(above).toBe(0);
  expect(a.causal).toBe(true);
  expect(softmaxError(a)).toBeLessThan(1e-5);
}

// ---- quantized matrices run quantized (MatMulNBits) -------------------------------------------------------

/** Every type that runs quantized, with its ggml block geometry and where its f16 scale fields sit. */
const QUANT_TYPES = [
  { name: 'Q8_0', type: GGML.Q8_0, values: 32, bytes: 34, halves: [[0, 4e-4]] },
  { name: 'Q4_0', type: GGML.Q4_0, values: 32, bytes: 18, halves: [[0, 6e-3]] },
  {
    name: 'Q4_1',
    type: GGML.Q4_1,
    values: 32,
    bytes: 20,
    halves: [
      [0, 6e-3],
      [2, -0.04],
    ],
  },
  { name: 'Q5_0', type: GGML.Q5_0, values: 32, bytes: 22, halves: [[0, 3e-3]] },
  {
    name: 'Q5_1',
    type: GGML.Q5_1,
    values: 32,
    bytes: 24,
    halves: [
      [0, 3e-3],
      [2, -0.04],
    ],
  },
  {
    name: 'Q4_K',
    type: GGML.Q4_K,
    values: 256,
    bytes: 144,
    halves: [
      [0, 2e-4],
      [2, 1e-3],
    ],
  },
  {
    name: 'Q5_K',
    type: GGML.Q5_K,
    values: 256,
    bytes: 176,
    halves: [
      [0, 1e-4],
      [2, 1e-3],
    ],
  },
  { name: 'Q6_K', type: GGML.Q6_K, values: 256, bytes: 210, halves: [[208, 5e-5]] },
] as const;

/** Deterministic pseudo-random bytes (xorshift32). */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * `count` values of a quantized type as ggml blocks: every code, packed scale and min random, the f16 fields
 * (d, dmin, m) set to a random sign-and-size around the given magnitude so the weights stay in a sane range.
 */
function randomBlocks(q: (typeof QUANT_TYPES)[number], count: number, seed: number): Uint8Array {
  const blocks = count / q.values;
  const b = Buffer.from(randomBytes(blocks * q.bytes, seed));
  for (let i = 0; i < blocks; i++) {
    for (const [at, size] of q.halves) {
      const jitter = 0.5 + ((i * 37 + at) % 11) / 10;
      b.writeUInt16LE(f32ToF16Bits(size * jitter), i * q.bytes + at);
    }
  }
  return b;
}

/** GQA llama with every matrix (embedding included) of `type`: hidden 256, 2 layers, 4 heads over 2, MLP 512. */
function quantizedLlama(type: (typeof QUANT_TYPES)[number] | null, base: GgufFile, context = 256, eos = true): Buffer {
  return gguf(quantizedLlamaSpec(type, base, context, eos));
}

function quantizedLlamaSpec(
  type: (typeof QUANT_TYPES)[number] | null,
  base: GgufFile,
  context = 256,
  eos = true,
): GgufSpec {
  const D = 256,
    F = 512,
    V = 512;
  const norm = (name: string) => ({
    name,
    ne: [D],
    type: GGML.F32,
    data: f32Bytes(range(D, (i) => 1 + 0.1 * Math.sin(i))),
  });
  let seed = 1;
  const matrix = (name: string, ne: number[]): TensorSpec => {
    const count = ne[0] * ne[1];
    if (type) return { name, ne, type: type.type, data: randomBlocks(type, count, seed++) };
    return { name, ne, type: GGML.F32, data: f32Bytes(range(count, (i) => Math.sin(i * 0.37 + seed++) * 0.05)) };
  };
  const tensors: TensorSpec[] = [matrix('token_embd.weight', [D, V]), norm('output_norm.weight')];
  for (let l = 0; l < 2; l++) {
    tensors.push(
      norm(`blk.${l}.attn_norm.weight`),
      matrix(`blk.${l}.attn_q.weight`, [D, D]),
      matrix(`blk.${l}.attn_k.weight`, [D, D / 2]),
      matrix(`blk.${l}.attn_v.weight`, [D, D / 2]),
      matrix(`blk.${l}.attn_output.weight`, [D, D]),
      norm(`blk.${l}.ffn_norm.weight`),
      matrix(`blk.${l}.ffn_gate.weight`, [D, F]),
      matrix(`blk.${l}.ffn_up.weight`, [D, F]),
      matrix(`blk.${l}.ffn_down.weight`, [F, D]),
    );
  }
  const meta = (key: string) => toMeta(base.metadata.get(key));
  return {
    metadata: [
      ['general.architecture', { str: 'llama' }],
      ['llama.embedding_length', { u32: D }],
      ['llama.block_count', { u32: 2 }],
      ['llama.feed_forward_length', { u32: F }],
      ['llama.attention.head_count', { u32: 4 }],
      ['llama.attention.head_count_kv', { u32: 2 }],
      ['llama.context_length', { u32: context }],
      ['llama.attention.layer_norm_rms_epsilon', { f32: 1e-5 }],
      ...(['tokenizer.ggml.model', 'tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type'].map(
        (k) => [k, meta(k)],
      ) as [string, MetaValue][]),
      ['tokenizer.ggml.bos_token_id', { u32: 1 }],
      ...(eos ? ([['tokenizer.ggml.eos_token_id', { u32: 2 }]] as [string, MetaValue][]) : []),
    ],
    tensors,
  };
}

/** Block b's scale or offset: a float32, or fround(factor · code) for factored values (as the graph computes it). */
const value = (v: BlockValues, b: number) =>
  v instanceof Float32Array ? v[b] : Math.fround(v.factors[Math.floor(b / v.group)] * v.codes[b]);
const heldBytes = (v: BlockValues) =>
  v instanceof Float32Array ? v.byteLength : v.codes.length + v.factors.byteLength;

describe("packMatrix: MatMulNBits codes, scales, zero points and offsets give ggml's values exactly", () => {
  test.each(QUANT_TYPES.map((q) => [q.name, q] as const))('%s', (_, q) => {
    const rows = 3,
      cols = 512;
    const bytes = randomBlocks(q, rows * cols, 7);
    const p = packMatrix(q.type, bytes, rows, cols);
    const blocks = cols / p.blockSize;
    expect(p.codes.length).toBe((rows * cols * p.bits) / 8);
    const w = new Float32Array(rows * cols);
    for (let n = 0; n < rows; n++) {
      for (let k = 0; k < cols; k++) {
        const b = n * blocks + Math.floor(k / p.blockSize),
          j = k % p.blockSize;
        const byte = p.codes[(b * p.blockSize * p.bits) / 8 + (p.bits === 4 ? j >> 1 : j)];
        const code = p.bits === 8 ? byte : j & 1 ? byte >> 4 : byte & 0xf;
        // Zero points: 0 when given (4-bit types with an offset), else MatMulNBits' default 2^(bits − 1).
        const zero = p.zeroPoints ? 0 : 2 ** (p.bits - 1);
        w[n * cols + k] = Math.fround((code - zero) * value(p.scales, b)) + (p.offsets ? value(p.offsets, b) : 0);
      }
    }
    expect(maxAbsDiff(w, dequantize(q.type, bytes, rows * cols))).toBe(0);
    // The session holds the codes, scales and offsets (float32, or codes and super-block factors).
    const held = p.codes.length + heldBytes(p.scales) + (p.offsets ? heldBytes(p.offsets) : 0);
    expect(held).toBe(packedBytes(q.type, rows, cols));
    // The K types keep ggml's compact scales: Q4_K and Q5_K hold 1 + 4/8 bytes per 32 values for each of the
    // scale and the offset, Q6_K 1 + 4/16 per 16.
    if (['Q4_K', 'Q5_K', 'Q6_K'].includes(q.name)) expect(p.scales).not.toBeInstanceOf(Float32Array);
  });
});

describe.skipIf(!HAVE_STORIES)('quantized GGUF matrices against the same values in F32', () => {
  const text = 'Lily and Tom went to the park to play with a big red ball. The sun was warm.';

  test.each(QUANT_TYPES.map((q) => [q.name, q] as const))(
    '%s: attention, q, k, hidden state and logits',
    async (_, q) => {
      const path = await file(quantizedLlama(q, readGguf(STORIES)));
      const reference = await file(dequantizedCopy(path));
      const quantized = await open(path, { logits: 'all' });
      const plain = await open(reference, { logits: 'all' });
      const a = await quantized.attention(text),
        b = await plain.attention(text);
      expect(a.kvHeads).toBe(2);
      expect(maxAbsDiff(a.attention.data, b.attention.data)).toBeLessThan(1e-4);
      for (const [x, y, name] of [
        [a.query!, b.query!, 'query'],
        [a.key!, b.key!, 'key'],
        [a.hiddenLast!, b.hiddenLast!, 'hidden'],
        [await quantized.logits(text), await plain.logits(text), 'logits'],
      ] as const) {
        expect(maxAbsDiff(x.data, y.data), name).toBeLessThan(1e-4 * Math.max(1, maxAbs(y.data)));
      }
      expect(plain.weightBytes).toBeGreaterThan(3.5 * quantized.weightBytes);
    },
  );

  test('K types run layer by layer (one session per stage) as on one session, bit for bit', async () => {
    // Their scales are computed in the graph (DequantizeLinear): each stage must compute its matrices' own.
    for (const name of ['Q4_K', 'Q6_K']) {
      const path = await file(quantizedLlama(QUANT_TYPES.find((q) => q.name === name)!, readGguf(STORIES)));
      const whole = await (await open(path)).attention(text);
      const staged = await (await open(path, { staged: true })).attention(text);
      expect(maxAbsDiff(staged.attention.data, whole.attention.data), name).toBe(0);
    }
  });

  test.skipIf(!DirectSession.available)(
    "K types: the extracting session takes the repacked weights through onnxruntime's C API (no binding), " +
      "gives the binding's results bit for bit, and reads the bytes handed over only while it is created",
    async () => {
      for (const name of ['Q4_K', 'Q6_K']) {
        const path = await file(quantizedLlama(QUANT_TYPES.find((q) => q.name === name)!, readGguf(STORIES)));
        const { architecture, config, weights, tokenizer } = openGgufModel(path);
        const family = ggufFamily(architecture);
        const dims = family.readConfig(config);
        const g = new GraphBuilder(weights);
        family.build(g, weights, dims, { extract: true });
        const memory = g.memoryFiles();
        expect(memory.length).toBeGreaterThan(0);
        const ids = tokenizer.encode(text).ids;
        const T = ids.length;
        const all: Record<string, Feed> = {
          [INPUTS.inputIds]: { type: 'int64', data: BigInt64Array.from(ids, BigInt), dims: [T] },
          [INPUTS.positionIds]: { type: 'int64', data: BigInt64Array.from(ids, (_, i) => BigInt(i)), dims: [T] },
          [INPUTS.causalMask]: { type: 'float32', data: causalMask(T), dims: [T, T] },
        };
        const binding = await Session.create(g.toBytes(), weights.root, { memory });
        const direct = await GroupedSession.create(g.toBytes(), [], weights.root, { memory });
        try {
          expect(direct.onCApi).toBe(true);
          const feeds = Object.fromEntries(binding.inputNames.map((n) => [n, all[n]]));
          const expected = await binding.run(feeds);
          // Overwritten once both sessions exist: neither reads them again (onnxruntime copied what it uses).
          for (const f of memory) f.data.fill(0x7f);
          for (const out of [await direct.run(feeds), await binding.run(feeds)]) {
            expect(Object.keys(out).sort()).toEqual(Object.keys(expected).sort());
            for (const [k, v] of Object.entries(expected)) {
              expect(out[k].dims, k).toEqual(v.dims);
              expect(Buffer.from(out[k].data.buffer, out[k].data.byteOffset, out[k].data.byteLength)).toEqual(
                Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength),
              );
            }
          }
          expect(expected[outputNames(0).probs].data.every(Number.isFinite)).toBe(true);
        } finally {
          await Promise.all([binding.release(), direct.release()]);
        }
      }
    },
  );

  test('a loaded model keeps none of the repacked bytes given to onnxruntime (extract, plain, generate)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const path = await file(quantizedLlama(QUANT_TYPES.find((q) => q.name === 'Q4_K')!, readGguf(STORIES)));
    const { architecture, config, weights } = openGgufModel(path);
    const g = new GraphBuilder(weights);
    ggufFamily(architecture).build(g, weights, ggufFamily(architecture).readConfig(config), { extract: true });
    const repacked = g.memoryFiles().reduce((n, f) => n + f.data.byteLength, 0);
    expect(repacked).toBeGreaterThan(100_000);
    // Twice: V8 sweeps dead ArrayBuffers' memory off the count on another thread after a collection, and the next
    // collection first finishes that sweep (once, a dead 67 MB buffer of an earlier test was counted as held).
    const held = () => {
      gc();
      gc();
      return process.memoryUsage().arrayBuffers;
    };
    for (const extract of [true, false]) {
      const before = held();
      const m = await open(path, { extract });
      if (!extract) await m.generate(text, { maxNewTokens: 1, temperature: 0 });
      // A closure over the built graph would keep every repacked weight for the model's life (it did, once).
      expect(held() - before, `extract: ${extract}`).toBeLessThan(repacked / 4);
    }
  });

  test(
    'context_length bounds texts (one-line error, or cut) and ' + 'generation, like max_position_embeddings',
    async () => {
      // No EOS: generation can only stop at the length or the context.
      const m = await open(await file(quantizedLlama(null, readGguf(STORIES), 16, false)));
      await expectBad(m.attention(text), /text is \d+ tokens but .* takes at most 16 positions/);
      expect((await m.attention(text, { truncate: true })).tokens).toHaveLength(16);
      const g = await m.generate(null, { maxNewTokens: 40, temperature: 0 });
      expect(g.stopped).toBe('positions');
      expect(g.ids).toHaveLength(16);
    },
  );
});

// ---- qwen2 and mistral architectures; byte-level BPE vocabularies ----------------------------------------

/** A byte-level BPE vocabulary ("gpt2" model) of `size` pieces, merges ranked as listed. */
function bpeMetadata(size: number, pre: string, addBos: boolean): [string, MetaValue][] {
  const pieces = ['<|endoftext|>', 'H', 'e', 'l', 'o', 'Ġ', 'w', 'r', 'd', 'll', 'He', 'or', 'Ġw', 'Ġwor', 'Hell'];
  const types: number[] = pieces.map((_, i) => (i === 0 ? 3 : 1));
  while (pieces.length < size) {
    pieces.push(`<unused_${pieces.length}>`);
    types.push(5);
  }
  return [
    ['tokenizer.ggml.model', { str: 'gpt2' }],
    ['tokenizer.ggml.pre', { str: pre }],
    ['tokenizer.ggml.tokens', { strs: pieces }],
    ['tokenizer.ggml.token_type', { i32s: types }],
    ['tokenizer.ggml.merges', { strs: ['l l', 'H e', 'o r', 'Ġ w', 'Ġw or', 'He ll'] }],
    ['tokenizer.ggml.bos_token_id', { u32: 0 }],
    ['tokenizer.ggml.eos_token_id', { u32: 0 }],
    ['tokenizer.ggml.add_bos_token', { bool: addBos }],
  ];
}

/** quantizedLlama's F32 model under another architecture: its keys renamed, metadata and tensors added. */
function otherArchitecture(arch: string, metadata: [string, MetaValue][], tensors: TensorSpec[] = []): Buffer {
  const spec = quantizedLlamaSpec(null, readGguf(STORIES));
  const renamed = spec.metadata.map(([k, v]): [string, MetaValue] => [k.replace(/^llama\./, `${arch}.`), v]);
  const replaced = new Set(metadata.map(([k]) => k));
  return gguf({
    metadata: [
      ...renamed.map(([k, v]): [string, MetaValue] => [k, k === 'general.architecture' ? { str: arch } : v]),
      ...metadata,
    ].filter(([k], i, all) => !replaced.has(k) || all.findLastIndex(([j]) => j === k) === i),
    tensors: [...spec.tensors, ...tensors],
  });
}

describe.skipIf(!HAVE_STORIES)('GGUF architectures mistral and qwen2', () => {
  const text = 'Lily and Tom went to the park to play with a big red ball. The sun was warm.';

  test('mistral: the llama block, q/k rows in Meta order, a sliding window from attention.sliding_window', async () => {
    const plain = await (await open(await file(quantizedLlama(null, readGguf(STORIES))))).attention(text);
    const m = await open(await file(otherArchitecture('mistral', [['mistral.attention.sliding_window', { u32: 6 }]])));
    const a = await m.attention(text);
    expect(a.model.modelType).toBe('mistral');
    expect(a.rotary).toBe('interleaved');
    expect(a.layerWindows).toEqual([
      [5, 0],
      [5, 0],
    ]);
    const T = a.tokens.length;
    // Within the first 6 positions nothing changes; past them, keys further than 5 back get exactly 0.
    expect(maxAbsDiff(a.attention.data.subarray(0, 6 * T), plain.attention.data.subarray(0, 6 * T))).toBeLessThan(1e-6);
    const beyond = (p: Float32Array) => {
      let sum = 0;
      for (let h = 0; h < 4; h++)
        for (let i = 6; i < T; i++) for (let j = 0; j < i - 5; j++) sum += p[(h * T + i) * T + j];
      return sum;
    };
    expect(beyond(a.attention.data)).toBe(0);
    expect(beyond(plain.attention.data)).toBeGreaterThan(0.01);
  });

  test('qwen2: q/k/v biases, HF (half) RoPE order, a byte-level BPE vocabulary', async () => {
    const D = 256;
    const bias = (name: string, n: number, scale: number): TensorSpec => ({
      name,
      ne: [n],
      type: GGML.F32,
      data: f32Bytes(range(n, (i) => scale * Math.cos(i))),
    });
    const biases = (scale: number) =>
      [0, 1].flatMap((l) => [
        bias(`blk.${l}.attn_q.bias`, D, scale),
        bias(`blk.${l}.attn_k.bias`, D / 2, scale),
        bias(`blk.${l}.attn_v.bias`, D / 2, scale),
      ]);
    const qwen = async (scale: number) =>
      (await open(await file(otherArchitecture('qwen2', bpeMetadata(512, 'qwen2', false), biases(scale))))).attention(
        'Hello world',
      );
    const [a, zero] = [await qwen(0.1), await qwen(0)];
    expect(a.tokens).toEqual(['Hell', 'o', 'Ġwor', 'l', 'd']);
    expect(a.model.modelType).toBe('qwen2');
    expect(a.rotary).toBe('half');
    expect(a.kvHeads).toBe(2);
    // Position 0, layer 0 (RoPE is the identity there): q moves by exactly the bias of its head.
    const T = a.tokens.length,
      d = 64;
    for (let h = 0; h < 4; h++) {
      const at = h * T * d;
      const shift = a.query!.data.subarray(at, at + d).map((x, i) => x - zero.query!.data[at + i]);
      expect(
        maxAbsDiff(
          shift,
          range(d, (i) => Math.fround(0.1 * Math.cos(h * d + i))),
        ),
      ).toBeLessThan(1e-5);
    }
  });
});

describe('tokenizer.ggml.model "gpt2": byte-level BPE on tokenizers.js', () => {
  test.each([
    ['default', false],
    ['qwen2', false],
    ['llama-bpe', true],
  ] as const)('pre-tokenizer %s, BOS %s: merges by rank, control pieces whole, decodes back', async (pre, bos) => {
    const path = await file(gguf({ metadata: bpeMetadata(32, pre, bos), tensors: [] }));
    const t = ggufTokenizer(readGguf(path), 'bpe.gguf');
    const e = t.encode('Hello world');
    expect(e.tokens).toEqual([...(bos ? ['<|endoftext|>'] : []), 'Hell', 'o', 'Ġwor', 'l', 'd']);
    expect(e.ids).toEqual([...(bos ? [0] : []), 14, 4, 13, 3, 8]);
    expect(t.decode(e.ids.slice(bos ? 1 : 0))).toBe('Hello world');
    expect(t.encode('Hello<|endoftext|>').tokens.slice(-1)).toEqual(['<|endoftext|>']);
    expect(t.bos).toBe(0);
  });

  /** A vocabulary of `pieces` (byte-level symbols) and `merges`, under pre-tokenizer `pre`. */
  const tokenize = async (pre: string, pieces: string[], merges: string[], text: string) => {
    const metadata: [string, MetaValue][] = [
      ['tokenizer.ggml.model', { str: 'gpt2' }],
      ['tokenizer.ggml.pre', { str: pre }],
      ['tokenizer.ggml.tokens', { strs: pieces }],
      ['tokenizer.ggml.merges', { strs: merges }],
    ];
    return ggufTokenizer(readGguf(await file(gguf({ metadata, tensors: [] }))), 'x').encode(text).tokens;
  };

  test("falcon (llama.cpp's three regexes in turn): digits cut in threes before merging", async () => {
    const pieces = ['1', '2', '3', '4', '5', '12', '34', '123', '45'];
    // Merged whole, "12345" would be 12 · 34 · 5 (rank 0 is "3 4"); cut as "123" "45" it is 123 · 45.
    const merges = ['3 4', '1 2', '12 3', '4 5'];
    expect(await tokenize('gpt2', pieces, merges, '12345')).toEqual(['12', '34', '5']);
    expect(await tokenize('falcon', pieces, merges, '12345')).toEqual(['123', '45']);
  });

  test('bloom: one rule, runs of anything but spaces and .,!?… (so "a;b" is one piece)', async () => {
    const pieces = ['a', ';', 'b', 'a;', 'a;b', '.'];
    const merges = ['a ;', 'a; b'];
    expect(await tokenize('gpt2', pieces, merges, 'a;b')).toEqual(['a', ';', 'b']);
    expect(await tokenize('bloom', pieces, merges, 'a;b')).toEqual(['a;b']);
    expect(await tokenize('bloom', pieces, merges, 'a;b.')).toEqual(['a;b', '.']);
  });

  test('an unknown pre-tokenizer or missing merges are named', async () => {
    await expectBad(
      async () =>
        ggufTokenizer(readGguf(await file(gguf({ metadata: bpeMetadata(32, 'tekken', false), tensors: [] }))), 'x'),
      /pre-tokenizer "tekken" is not supported/,
    );
    const noMerges = bpeMetadata(32, 'gpt2', false).filter(([k]) => k !== 'tokenizer.ggml.merges');
    await expectBad(
      async () => ggufTokenizer(readGguf(await file(gguf({ metadata: noMerges, tensors: [] }))), 'x'),
      /missing metadata "tokenizer\.ggml\.merges"/,
    );
  });
});
