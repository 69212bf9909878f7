/**
 * Issue 11 items 6–10: readers follow their formats' rules and check values before using them. Each test is
 * named after the failure the issue reported.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import { AttnvizError, MAX_MESSAGE_CHARS, oneLine, shorten } from '../src/core/errors.js';
import { decodeHeader, MAX_TENSORS } from '../src/core/safetensors.js';
import { readGguf } from '../src/load/gguf.js';
import { loadModel } from '../src/models/load-model.js';
import { expectBad, goldenModel, HAVE_SHARED } from './shared.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-readers-'));
  dirs.push(dir);
  return dir;
}
async function copyOf(name: string): Promise<string> {
  const dir = await scratch();
  await cp(goldenModel(name), dir, { recursive: true });
  return dir;
}
async function editJson(file: string, edit: (j: Record<string, unknown>) => void): Promise<void> {
  const j = JSON.parse(await readFile(file, 'utf8'));
  edit(j);
  await writeFile(file, JSON.stringify(j));
}
const sync = (f: () => unknown) => Promise.resolve().then(f);
/** Loads `dir` and runs one text; the model is released either way. */
const run = (dir: string, text = 'The cat sat.') =>
  loadModel(dir).then(async (m) => {
    try {
      return await m.attention(text);
    } finally {
      await m.release();
    }
  });

function attentionFile(): Buffer {
  const T = 2;
  return encodeAttentionFile({
    tokens: ['a', 'b'],
    text: 'a b',
    pair: null,
    sentenceBStart: null,
    model: { source: 't', modelType: 'bert' },
    causal: false,
    attention: { dims: [1, 1, T, T], data: new Float32Array([0.5, 0.5, 0.25, 0.75]) },
  });
}

describe('item 6: safetensors header lies', () => {
  test('a header-length field 1–3 bytes short (or long) is refused, not read with shifted data', async () => {
    const good = attentionFile();
    expect(decodeAttentionFile(good, 'good').attention.data[3]).toBe(0.75);
    const length = Number(good.readBigUInt64LE(0));
    for (const delta of [-1, -2, -3, 1, 2]) {
      const bad = Buffer.from(good);
      bad.writeBigUInt64LE(BigInt(length + delta), 0);
      await expectBad(
        sync(() => decodeAttentionFile(bad, 'shifted')),
        /shifted: /,
      );
    }
  });

  test('a gap between tensors or trailing bytes are refused', async () => {
    const good = attentionFile();
    await expectBad(
      sync(() => decodeHeader(Buffer.concat([good, Buffer.alloc(4)]), 'trailing')),
      /cover 16 of the 20 data bytes/,
    );
  });

  test('a header of hundreds of thousands of empty entries is refused quickly, with bounded work', async () => {
    const entries = Array.from({ length: MAX_TENSORS + 10 }, (_, i) => `"${i}":{}`).join(',');
    const header = Buffer.from(`{${entries}}`);
    const bytes = Buffer.concat([Buffer.alloc(8), header]);
    bytes.writeBigUInt64LE(BigInt(header.length), 0);
    const start = performance.now();
    await expectBad(
      sync(() => decodeHeader(bytes, 'many')),
      /over the limit of 100000 tensors/,
    );
    expect(performance.now() - start).toBeLessThan(2000);
  });
});

describe.skipIf(!HAVE_SHARED)('item 7: config values checked before anything is allocated', () => {
  for (const headDim of [2_000_000_000, 9007199254740990])
    test(`head_dim ${headDim}: a one-line error at once`, async () => {
      const dir = await copyOf('llama-tiny-mha');
      await editJson(join(dir, 'config.json'), (c) => (c.head_dim = headDim));
      const start = performance.now();
      await expectBad(loadModel(dir), /"head_dim" must be an integer from 1 to 16777216/);
      expect(performance.now() - start).toBeLessThan(5000);
    });

  test('rope_theta -1 is refused by name', async () => {
    const dir = await copyOf('llama-tiny-mha');
    await editJson(join(dir, 'config.json'), (c) => (c.rope_theta = -1));
    await expectBad(loadModel(dir), /rope_theta -1 must be a number above 1/);
  });
});

describe.skipIf(!HAVE_SHARED)('item 8: tokenizer work bounded, ids checked', () => {
  test('a Prepend normalizer of 100,000 characters is refused before any encoding', async () => {
    const dir = await copyOf('gpt2-tiny');
    await editJson(join(dir, 'tokenizer.json'), (t) => (t.normalizer = { type: 'Prepend', prepend: 'x'.repeat(1e5) }));
    await expectBad(loadModel(dir), /"normalizer": "prepend" is 100000 characters, over 1000/);
  });

  test('a post_processor that is a number (or a Sequence holding one) is a one-line error', async () => {
    for (const pp of [3, { type: 'Sequence', processors: [{ type: 'ByteLevel' }, 7] }]) {
      const dir = await copyOf('gpt2-tiny');
      await editJson(join(dir, 'tokenizer.json'), (t) => (t.post_processor = pp));
      await expectBad(loadModel(dir), /post_processor.* must be null or an object with a "type"/);
    }
  });

  test('an added token whose id is past the embedding rows: one-line error, no onnxruntime log', async () => {
    const dir = await copyOf('gpt2-tiny');
    await editJson(join(dir, 'tokenizer.json'), (t) => {
      (t.added_tokens as unknown[]).push({
        id: 60000,
        content: 'zqzq',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: false,
      });
      ((t.model as { vocab: Record<string, number> }).vocab as Record<string, number>).zqzq = 60000;
    });
    await expectBad(run(dir, 'a zqzq b'), /token "zqzq" id 60000, outside the model's 50257 embedding rows/);
  });
});

describe('item 9: GGUF nesting', () => {
  test('arrays nested 10,000 deep: a one-line error, not a stack overflow', async () => {
    const parts: Buffer[] = [Buffer.from('GGUF')];
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n);
      parts.push(b);
    };
    const u64 = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(n));
      parts.push(b);
    };
    u32(3);
    u64(0); // tensors
    u64(1); // metadata entries
    u64(4);
    parts.push(Buffer.from('deep'));
    u32(9); // ARRAY
    for (let i = 0; i < 10_000; i++) {
      u32(9); // of arrays
      u64(1);
    }
    u32(4);
    u64(0);
    const path = join(await scratch(), 'deep.gguf');
    await writeFile(path, Buffer.concat(parts));
    await expectBad(
      sync(() => readGguf(path)),
      /metadata deep nests arrays over 8 deep/,
    );
  });
});

describe('item 10: error messages are one line of at most 300 characters', () => {
  test('oneLine and shorten keep start and end, drop line breaks and control characters', () => {
    expect(oneLine('a\nb\r\n\u001bc')).toBe('a b c');
    const long = `start ${'x'.repeat(5000)} end`;
    expect(oneLine(long)).toHaveLength(MAX_MESSAGE_CHARS);
    expect(oneLine(long)).toMatch(/^start x+…x+ end$/);
    expect(shorten('y'.repeat(1e6))).toHaveLength(60);
    expect(new AttnvizError(`${'z'.repeat(1e6)}\nsecond`).message).toHaveLength(MAX_MESSAGE_CHARS);
  });

  test('a tensor name of 1 MB in a safetensors header is not echoed whole', async () => {
    const name = 'n'.repeat(1e6);
    const header = Buffer.from(JSON.stringify({ [name]: { dtype: 'X', shape: [], data_offsets: [0, 0] } }));
    const bytes = Buffer.concat([Buffer.alloc(8), header]);
    bytes.writeBigUInt64LE(BigInt(header.length), 0);
    const message = await expectBad(
      sync(() => decodeHeader(bytes, 'big')),
      /unsupported dtype "X"/,
    );
    expect(message.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  });
});
