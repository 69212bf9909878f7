/**
 * Model sources end to end: a hub id resolved through a cache laid out as the Python client writes it
 * (weights are symlinks into blobs/, which onnxruntime must still read as external data), and the graph
 * itself, which must not carry the weights (so checkpoints past protobuf's 2 GB limit build like small ones).
 */
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { Model } from '../src/models/checkpoint-model.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { bert } from '../src/graph/bert.js';
import { readConfig } from '../src/load/config.js';
import { Weights } from '../src/load/weights.js';
import { buildCache } from './hub-cache.js';
import { expectMatchesGolden, goldenModel, HAVE_SHARED, readGoldenCase, SHARED } from './shared.js';

const tmp = await mkdtemp(join(tmpdir(), 'attnviz-sources-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe.skipIf(!HAVE_SHARED)('sources', () => {
  test('a hub id from an offline Hugging Face cache reproduces the golden case', async () => {
    const dir = goldenModel('gpt2-tiny');
    const files = new Map(
      await Promise.all((await readdir(dir)).map(async (f) => [f, await readFile(join(dir, f))] as const)),
    );
    const cache = join(tmp, 'hub');
    await buildCache(cache, 'openai-community/gpt2-tiny', 'a'.repeat(40), files);
    const m = await Model.load('openai-community/gpt2-tiny', { env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' } });
    try {
      expect(m.dir).toBe(join(cache, 'models--openai-community--gpt2-tiny', 'snapshots', 'a'.repeat(40)));
      const golden = await readGoldenCase(join(SHARED, 'golden/cases/gpt2-tiny__fox.safetensors'));
      expectMatchesGolden(await m.attention(golden.text), golden);
    } finally {
      await m.release();
    }
  });

  test('the ONNX graph refers to the weights instead of holding them', async () => {
    const dir = goldenModel('bert-tiny');
    const weights = await Weights.open(dir);
    const g = new GraphBuilder(weights);
    bert.build(g, weights, bert.readConfig(await readConfig(dir)), { extract: true });
    const graphBytes = g.toBytes().length;
    expect(weights.byteLength()).toBeGreaterThan(5_000_000);
    expect(graphBytes).toBeLessThan(50_000);
  });
});
