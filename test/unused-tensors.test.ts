/**
 * No checkpoint tensor is silently ignored (graph/family.ts checkAllRead): every tensor is read by the graph
 * or matches the family's list of knowingly skipped ones (heads, poolers, buffers, tied copies); any other is
 * a one-line error naming it, unless loaded with allowUnused (CLI --allow-unused: a warning listing them).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import type { TensorToWrite } from '../src/core/safetensors.js';
import { Model } from '../src/models/checkpoint-model.js';
import { loadModel } from '../src/models/load-model.js';
import { deriveCheckpoint, removeCheckpoint, type DeriveOptions } from './checkpoints.js';
import { expectBad, goldenModel, HAVE_SHARED, maxAbsDiff } from './shared.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TEXT = 'The cat sat on the mat.';

const derived: string[] = [];
const opened: Model[] = [];
async function derive(model: string, options: DeriveOptions): Promise<string> {
  const dir = await deriveCheckpoint(goldenModel(model), options);
  derived.push(dir);
  return dir;
}
async function open(dir: string, allowUnused = false): Promise<Model> {
  const m = await Model.load(dir, { allowUnused });
  opened.push(m);
  return m;
}
afterAll(async () => {
  await Promise.all(opened.splice(0).map((m) => m.release()));
  await Promise.all(derived.splice(0).map(removeCheckpoint));
});

const f32 = (n: number): TensorToWrite => ({ dtype: 'F32', shape: [n], data: new Float32Array(n).fill(0.5) });

describe.skipIf(!HAVE_SHARED)('checkpoint tensors neither read nor skipped', () => {
  test(
    'the golden models load: their heads and buffers (cls.*, ' + 'position_ids, attn.bias, pooler, lm_head) are listed',
    async () => {
      for (const name of ['bert-tiny', 'gpt2-tiny', 'roberta-tiny', 'llama-tiny-mha'])
        expect((await open(goldenModel(name))).unusedTensors, name).toEqual([]);
    },
  );

  test('a q/k/v bias the config does not declare (Llama without attention_bias) is an error naming it', async () => {
    const dir = await derive('llama-tiny-mha', { extra: { 'model.layers.1.self_attn.k_proj.bias': f32(48) } });
    await expectBad(
      loadModel(dir),
      new RegExp(
        /checkpoint tensor "model\.layers\.1\.self_attn\.k_proj\.bias" is neither read by the llama graph /.source +
          /nor a tensor it knowingly skips/.source,
      ),
      /--allow-unused/,
    );
    // allowUnused: loads, lists it, and computes what the checkpoint without it computes.
    const m = await open(dir, true);
    expect(m.unusedTensors).toEqual(['model.layers.1.self_attn.k_proj.bias']);
    const plain = await open(goldenModel('llama-tiny-mha'));
    expect(maxAbsDiff((await m.attention(TEXT)).attention.data, (await plain.attention(TEXT)).attention.data)).toBe(0);
  });

  // Messages are capped at 300 characters (core/errors.ts): the list is cut in the middle, the advice kept.
  test('several unknown tensors: the first named, the count and a few more given, in one line', async () => {
    const extra: Record<string, TensorToWrite> = {};
    for (let i = 0; i < 6; i++) extra[`bert.encoder.layer.0.attention.self.relative_${i}`] = f32(4);
    await expectBad(
      loadModel(await derive('bert-tiny', { extra })),
      new RegExp(
        /tensor "bert\.encoder\.layer\.0\.attention\.self\.relative_0" /.source +
          /\(and 5 more: .*relative_1, .*relative_2/.source,
      ),
      /--allow-unused/,
    );
  });

  test('a tensor with the other prefix (bert. read, a bare copy present) is unknown too', async () => {
    await expectBad(
      loadModel(await derive('bert-tiny', { extra: { 'embeddings.LayerNorm.bias': f32(128) } })),
      /checkpoint tensor "embeddings\.LayerNorm\.bias"/,
    );
  });

  test('attnviz extract: exit 2 with the name; --allow-unused warns and writes the file', async () => {
    const dir = await derive('llama-tiny-mha', { extra: { 'model.layers.0.self_attn.q_proj.bias': f32(48) } });
    const args = ['dist/src/cli/main.js', 'extract', '--model', dir, '--text', TEXT, '--out', `${dir}/a.safetensors`];
    const failed = await run(process.execPath, args, { cwd: ROOT }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toMatch(/^attnviz: .*"model\.layers\.0\.self_attn\.q_proj\.bias".*\n$/);
    const { stderr } = await run(process.execPath, [...args, '--allow-unused'], { cwd: ROOT });
    expect(stderr).toMatch(
      /^warning: --allow-unused: 1 checkpoint tensors not read: model\.layers\.0\.self_attn\.q_proj\.bias\nwrote /,
    );
  });
});
