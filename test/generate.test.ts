import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readAttentionFile } from '../src/core/files.js';
import { Model } from '../src/models/checkpoint-model.js';
import { argmax, Sampler } from '../src/models/sampler.js';
import { deriveCheckpoint, removeCheckpoint } from './checkpoints.js';
import { buildCache, readFiles } from './hub-cache.js';
import { cli, HAVE_CLI } from './cli-run.js';
import { goldenModel, HAVE_SHARED, present, SHARED } from './shared.js';

const MODELS = join(SHARED, 'models');
const STORIES = join(MODELS, 'stories260K', 'stories260K.gguf');
const TINY = join(MODELS, 'tinystories-656k');
const HAVE_MODELS = present(existsSync(STORIES) && existsSync(TINY), `${STORIES} and ${TINY}`, 'the real-model tests');

const TINY_BEGINS = 'Once upon a time, there was a little girl named Lily. She had a toy car that she loved very much.';

/** The published greedy text, read from the models README (the fenced block after "prints exactly:"). */
async function publishedText(): Promise<string> {
  const readme = await readFile(join(MODELS, 'README.md'), 'utf8');
  const m = /prints exactly:\n\n```\n([\s\S]*?)\n```/.exec(readme);
  if (!m) throw new Error('no published text in ../shared/models/README.md');
  return m[1];
}

const opened: Model[] = [];
const temps: string[] = [];
async function open(source: string, options: Parameters<typeof Model.load>[1] = {}): Promise<Model> {
  const m = await Model.load(source, options);
  opened.push(m);
  return m;
}
async function temp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-generate-'));
  temps.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(opened.splice(0).map((m) => m.release()));
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe.skipIf(!HAVE_MODELS)('published texts', () => {
  let stories: Model;
  beforeAll(async () => {
    stories = await open(STORIES);
  });

  test('stories260K.gguf: greedy from BOS, 256 tokens, is the published text exactly', async () => {
    const g = await stories.generate(null, { maxNewTokens: 256, temperature: 0 });
    expect(g.text).toBe(await publishedText());
    expect(g.stopped).toBe('length');
    expect(g.ids).toHaveLength(257);
    expect(g.promptLength).toBe(1);
    // The attention of the whole sequence, for the views to step through.
    const a = g.attention!;
    expect(a.attention.dims).toEqual([5, 8, 257, 257]);
    expect(a.tokens).toEqual(g.tokens);
    expect(a.tokens[0]).toBe('<s>');
    expect(a.kvHeads).toBe(4);
    expect(a.causal).toBe(true);
  });

  test.skipIf(!HAVE_CLI)(
    'attnviz generate --model stories260K.gguf --max-new-tokens 256 --temperature 0 prints it',
    async () => {
      const out = join(await temp(), 'gen.safetensors');
      const r = await cli([
        'generate',
        '--model',
        STORIES,
        '--max-new-tokens',
        '256',
        '--temperature',
        '0',
        '--out',
        out,
      ]);
      expect(r.stderr).toMatch(/wrote .*gen\.safetensors: 5 layers × 8 heads × 257 tokens \(1 from the prompt\)/);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${await publishedText()}\n`);
      const a = await readAttentionFile(out);
      expect(a.tokens).toHaveLength(257);
      expect(a.kvHeads).toBe(4);
      expect(a.rotary).toBe('interleaved');
      expect(a.query!.dims).toEqual([5, 8, 257, 8]);
    },
  );

  test('TinyStories-656K as a folder: greedy from BOS begins with the quoted sentence and ends at EOS', async () => {
    const m = await open(TINY, { extract: false });
    const g = await m.generate(null, { maxNewTokens: 300, temperature: 0 });
    expect(g.text.startsWith(TINY_BEGINS)).toBe(true);
    expect(g.stopped).toBe('eos');
    expect(g.ids.at(-1)).toBe(2);
    expect(g.tokens.at(-1)).toBe('<|end_story|>');
    expect(g.attention).toBeUndefined();
  });

  test('TinyStories-656K as a hub id from a Hugging Face cache on disk', async () => {
    const cache = await temp();
    const files = await readFiles(TINY);
    await buildCache(cache, 'raincandy-u/TinyStories-656K', 'c'.repeat(40), files);
    const m = await open('raincandy-u/TinyStories-656K', {
      env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' },
      progress: false,
    });
    const g = await m.generate(null, { maxNewTokens: 30, temperature: 0 });
    expect(g.text.startsWith(TINY_BEGINS.slice(0, 60))).toBe(true);
    expect(g.attention!.attention.dims).toEqual([2, 8, 31, 31]);
    expect(g.attention!.kvHeads).toBe(4);
    expect(g.attention!.rotary).toBe('half');
  });
});

describe.skipIf(!HAVE_MODELS)('generation invariants', () => {
  test.each([
    ['stories260K.gguf', STORIES],
    ['TinyStories-656K', TINY],
  ])('%s: KV-cache steps choose what full recomputation chooses', async (_, source) => {
    const m = await open(source, { extract: false, logits: 'last' });
    const prompt = 'Tom had a red ball. He';
    const g = await m.generate(prompt, { maxNewTokens: 40, temperature: 0 });
    // Greedy by hand: the whole sequence through the model's own (cache-free) session at every step.
    const inner = m as unknown as {
      session: { run(feeds: object): Promise<Record<string, { data: Float32Array }>> };
      feeds(e: { ids: number[]; typeIds: number[] }): object;
    };
    const ids = m.tokenizer.encode(prompt).ids;
    expect(g.ids.slice(0, g.promptLength)).toEqual(ids);
    const tokens = [...ids];
    while (tokens.length < g.ids.length) {
      const out = await inner.session.run(inner.feeds({ ids: tokens, typeIds: tokens.map(() => 0) }));
      tokens.push(argmax(out.logits.data));
    }
    expect(tokens).toEqual(g.ids);
  });

  test(
    'the same seed gives the same text; other seeds give ' + 'others; the attention covers prompt + continuation',
    async () => {
      const m = await open(TINY);
      const run = (seed: number) =>
        m.generate('Once upon a time', { maxNewTokens: 24, temperature: 1, topP: 0.9, seed });
      const [a, b] = [await run(42), await run(42)];
      expect(b.text).toBe(a.text);
      expect(b.ids).toEqual(a.ids);
      expect(a.seed).toBe(42);
      const others = new Set([a.text, ...(await Promise.all([1, 2, 3].map(async (s) => (await run(s)).text)))]);
      expect(others.size).toBeGreaterThan(1);
      const prompt = m.tokenizer.encode('Once upon a time');
      expect(a.tokens.slice(0, a.promptLength)).toEqual(prompt.tokens);
      const T = a.ids.length;
      expect(a.attention!.attention.dims).toEqual([2, 8, T, T]);
      expect(a.attention!.inputIds).toEqual(a.ids);
      const attention = a.attention!.attention.data;
      expect(attention[T - 1]).toBe(0); // row 0, last column: causal
    },
  );

  test('stops at the last position the model has', async () => {
    const dir = await deriveCheckpoint(goldenModel('llama-tiny-mha'), { config: { max_position_embeddings: 12 } });
    temps.push(dir);
    const m = await open(dir);
    const g = await m.generate('The cat', { maxNewTokens: 50, temperature: 0 });
    expect(g.stopped).toBe('positions');
    expect(g.ids).toHaveLength(12);
    await removeCheckpoint(dir);
  });
});

describe('Sampler', () => {
  test('temperature 0 is the argmax, the first on ties', () => {
    expect(new Sampler({ temperature: 0, topP: 1, seed: 1 }).sample([0, 3, 1, 3])).toBe(1);
  });

  test('top-p samples only from the nucleus; the same seed repeats', () => {
    const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];
    const draw = (seed: number, topP: number) => {
      const s = new Sampler({ temperature: 1, topP, seed });
      return Array.from({ length: 400 }, () => s.sample(logits));
    };
    const nucleus = draw(7, 0.75);
    expect(new Set(nucleus)).toEqual(new Set([0, 1]));
    expect(draw(7, 0.75)).toEqual(nucleus);
    const all = draw(7, 1);
    expect(new Set(all)).toEqual(new Set([0, 1, 2, 3]));
    expect(all.filter((x) => x === 0).length / all.length).toBeCloseTo(0.5, 1);
  });

  test.each([
    [{ temperature: -1, topP: 1, seed: 0 }, /temperature must be a number ≥ 0/],
    [{ temperature: 1, topP: 0, seed: 0 }, /top-p must be in \(0, 1\]/],
    [{ temperature: 1, topP: 1, seed: 1.5 }, /seed must be a non-negative integer/],
  ])('bad options %j', (options, pattern) => {
    expect(() => new Sampler(options)).toThrow(pattern);
  });
});

describe.skipIf(!HAVE_SHARED)('bad generate requests', () => {
  test('a model without a language-model head cannot generate', async () => {
    const m = await open(goldenModel('bert-tiny'));
    await expect(m.generate('hello', { maxNewTokens: 2 })).rejects.toThrow(/model_type bert cannot generate/);
    await expect(Model.load(goldenModel('bert-tiny'), { logits: 'last' })).rejects.toThrow(
      /model_type bert has no language-model head/,
    );
  });

  test('maxNewTokens must be a positive integer', async () => {
    const m = await open(goldenModel('llama-tiny-mha'));
    await expect(m.generate('hi', { maxNewTokens: 0 })).rejects.toThrow(/max new tokens must be a positive integer/);
  });

  test.skipIf(!HAVE_CLI).each([
    [[], /missing --max-new-tokens/],
    [['--max-new-tokens', '0'], /--max-new-tokens must be a positive integer, not "0"/],
    [['--max-new-tokens', '4', '--temperature=-1'], /--temperature must be a number ≥ 0, not "-1"/],
    [['--max-new-tokens', '4', '--top-p', '1.5'], /--top-p must be a number in \(0, 1\], not "1.5"/],
    [['--max-new-tokens', '4', '--seed', 'x'], /--seed must be a non-negative integer, not "x"/],
  ])('attnviz generate %j fails with one line', async (args, pattern) => {
    const r = await cli(['generate', '--model', goldenModel('llama-tiny-mha'), ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test.skipIf(!HAVE_CLI)('attnviz generate prints the seed it drew, and that seed repeats the text', async () => {
    const model = goldenModel('llama-tiny-mha');
    const first = await cli(['generate', '--model', model, '--prompt', 'The cat', '--max-new-tokens', '8']);
    expect(first.code).toBe(0);
    const seed = /--seed (\d+)/.exec(first.stderr)![1];
    const again = await cli([
      'generate',
      '--model',
      model,
      '--prompt',
      'The cat',
      '--max-new-tokens',
      '8',
      '--seed',
      seed,
    ]);
    expect(again.stdout).toBe(first.stdout);
    expect(first.stdout.startsWith('The cat')).toBe(true);
  });
});
