/**
 * python/attnviz_file.py: attention files written from Python (numpy only) in the shapes PyTorch users have —
 * Hugging Face `outputs.attentions` and a TransformerLens ActivationCache — read back by attnviz with the
 * values they were given, and rendered. The inputs are golden cases (../shared), re-shaped in Python as
 * transformers and TransformerLens return them.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readAttentionFile } from '../src/core/files.js';
import { renderHtml } from '../src/export/html.js';
import { HAVE_CHROMIUM, launch, openHtml } from './browser.js';
import { HAVE_SHARED, SHARED, maxAbsDiff, readGoldenCase } from './shared.js';

const run = promisify(execFile);
const MODULE_DIR = resolve(import.meta.dirname, '../python');

/** A Python with numpy: Debian's (python3-numpy) first, then whatever `python3` is on PATH. */
async function findPython(): Promise<string | null> {
  for (const python of ['/usr/bin/python3', 'python3']) {
    try {
      await run(python, ['-c', 'import numpy']);
      return python;
    } catch {
      // next candidate
    }
  }
  return null;
}

const PYTHON = await findPython();
if (!PYTHON) {
  const why = 'no python3 with numpy (apt-get install python3-numpy)';
  if (process.env.CI === 'true') throw new Error(`Python tests cannot run: ${why}`);
  console.warn(`skipping Python tests: ${why}`);
}

const case_ = (name: string) => join(SHARED, 'golden', 'cases', `${name}.safetensors`);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'attnviz-python-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs `body` in Python with attnviz_file importable as `f` and the golden reader as `golden(name)`. */
async function python(body: string): Promise<string> {
  const script = join(dir, `script-${Math.random().toString(36).slice(2)}.py`);
  await writeFile(
    script,
    `import json, sys\nsys.path.insert(0, ${JSON.stringify(MODULE_DIR)})\nimport numpy as np\n` +
      `import attnviz_file as f\n` +
      `def golden(path):\n  t, m = f.read_safetensors(path)\n  return t, {k: json.loads(v) for k, v in m.items()}\n` +
      body,
  );
  const { stdout } = await run(PYTHON!, [script]);
  return stdout;
}

describe.skipIf(!PYTHON || !HAVE_SHARED)('attention files from Python', () => {
  test('Hugging Face outputs.attentions (a tuple of [batch, H, T, T]) with per-layer q/k', async () => {
    const out = join(dir, 'hf.safetensors');
    await python(`
t, m = golden(${JSON.stringify(case_('bert-tiny__cat_pair'))})
# transformers: one [batch, H, T, T] tensor per layer; here batch 2, the golden case second.
noise = lambda a: np.full_like(a, 0.25)
attentions = tuple(np.stack([noise(layer), layer]) for layer in t["attention"])
queries = tuple(np.stack([layer, layer]) for layer in t["query"])
keys = tuple(np.stack([layer, layer]) for layer in t["key"])
f.write_attention_file(${JSON.stringify(out)}, attentions, m["tokens"], queries, keys, batch=1,
  text=m["text"], pair=m["text_pair"], sentence_b_start=m["tokens"].index("[SEP]") + 1,
  model_source="bert-tiny", model_type="bert", input_ids=t["input_ids"])
`);
    const golden = await readGoldenCase(case_('bert-tiny__cat_pair'));
    const a = await readAttentionFile(out);
    expect(a.tokens).toEqual(golden.tokens);
    expect(a.attention.dims).toEqual(golden.dims('attention'));
    // float32 in, float32 out: bit-exact
    expect(maxAbsDiff(a.attention.data, golden.f32('attention'))).toBe(0);
    expect(maxAbsDiff(a.query!.data, golden.f32('query'))).toBe(0);
    expect(maxAbsDiff(a.key!.data, golden.f32('key'))).toBe(0);
    expect(a.causal).toBe(false);
    expect(a.sentenceBStart).toBe(golden.tokens.indexOf('[SEP]') + 1);
    expect(a.inputIds).toEqual(golden.inputIds);
    expect(a.model).toEqual({ source: 'bert-tiny', modelType: 'bert' });
    expect(a.pair).toBe(golden.textPair);
  });

  test('a TransformerLens ActivationCache: hook_pattern and the rotated hook_rot_q / hook_rot_k', async () => {
    const out = join(dir, 'tl.safetensors');
    await python(`
t, m = golden(${JSON.stringify(case_('llama-tiny-mha__cat_sat'))})
class Cache(dict):
  """What matters of an ActivationCache: a mapping from hook names to [batch, ...] tensors."""
cache = Cache()
for l in range(t["attention"].shape[0]):
  cache[f"blocks.{l}.attn.hook_pattern"] = t["attention"][l][None]
  # TransformerLens keeps q/k as [batch, pos, head, d_head]; hook_q is before RoPE, hook_rot_q after.
  cache[f"blocks.{l}.attn.hook_q"] = np.zeros_like(t["query"][l].transpose(1, 0, 2))[None]
  cache[f"blocks.{l}.attn.hook_k"] = np.zeros_like(t["key"][l].transpose(1, 0, 2))[None]
  cache[f"blocks.{l}.attn.hook_rot_q"] = t["query"][l].transpose(1, 0, 2)[None]
  cache[f"blocks.{l}.attn.hook_rot_k"] = t["key"][l].transpose(1, 0, 2)[None]
f.write_attention_file(${JSON.stringify(out)}, cache, m["tokens"], text=m["text"], rotary="half",
  model_source="llama-tiny-mha", model_type="llama")
`);
    const golden = await readGoldenCase(case_('llama-tiny-mha__cat_sat'));
    const a = await readAttentionFile(out);
    expect(a.tokens).toEqual(golden.tokens);
    expect(maxAbsDiff(a.attention.data, golden.f32('attention'))).toBe(0);
    expect(maxAbsDiff(a.query!.data, golden.f32('query'))).toBe(0);
    expect(maxAbsDiff(a.key!.data, golden.f32('key'))).toBe(0);
    expect(a.causal).toBe(true); // inferred: nothing above the diagonal
    expect(a.rotary).toBe('half');
  });

  test('bad input: one clear error each, and no file left behind', async () => {
    const out = join(dir, 'bad.safetensors');
    const errors = JSON.parse(
      await python(`
t, m = golden(${JSON.stringify(case_('gpt2-tiny__cat_sat'))})
a, tokens = t["attention"], m["tokens"]
cases = {
  "rank": lambda: f.write_attention_file(${JSON.stringify(out)}, a[0], tokens),
  "tokens": lambda: f.write_attention_file(${JSON.stringify(out)}, a, tokens[:-1]),
  "q without k": lambda: f.write_attention_file(${JSON.stringify(out)}, a, tokens, queries=t["query"]),
  "q shape": lambda: f.write_attention_file(${JSON.stringify(out)}, a, tokens, t["query"][:1], t["key"][:1]),
  "scores": lambda: f.write_attention_file(${JSON.stringify(out)}, a * 3, tokens),
  "nan": lambda: f.write_attention_file(${JSON.stringify(out)}, np.where(a > 0.5, np.nan, a), tokens),
  "batch": lambda: f.write_attention_file(${JSON.stringify(out)}, tuple(x[None] for x in a), tokens, batch=1),
  "no data": lambda: f.write_attention_file(${JSON.stringify(out)}, (), tokens),
}
errors = {}
for name, call in cases.items():
  try:
    call()
    errors[name] = None
  except ValueError as e:
    errors[name] = str(e)
print(json.dumps(errors))
`),
    );
    expect(errors).toEqual({
      rank: expect.stringMatching(/^attentions has shape \[\d+, \d+, \d+\]; expected \[layers, heads, T, T\]/),
      tokens: expect.stringMatching(/^\d+ tokens but the attention covers \d+ positions$/),
      'q without k': 'queries and keys come together or not at all',
      'q shape': expect.stringMatching(/^query has shape \[1, 4, \d+, 8\]; expected \[2, 4, \d+, d\]$/),
      scores: expect.stringMatching(/summing to 1 \(pass softmax outputs, not scores\)/),
      nan: 'attentions holds NaN or infinite values',
      batch: 'batch index 1 is out of range for attentions[0] of batch size 1',
      'no data': expect.stringMatching(/^attentions has shape \[0\]/),
    });
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(dir)).filter((f) => f.startsWith('bad') || f.endsWith('.tmp'))).toEqual([]);
  });

  test.skipIf(!HAVE_CHROMIUM)(
    'a file written from Python renders in the neuron view, which reproduces it',
    async () => {
      const a = await readAttentionFile(join(dir, 'tl.safetensors'));
      const browser = await launch();
      try {
        const page = await openHtml(
          browser,
          renderHtml(a, { view: 'neuron', options: { layer: 1, head: 2, selected: 5 } }),
        );
        expect(page.errors).toEqual([]);
        expect(page.requests).toEqual([]);
        // The neuron view's own check: softmax of the file's q·k/√d (causal) against the file's attention.
        expect(await page.page.locator('.av-check').getAttribute('data-ok')).toBe('true');
        await page.close();
      } finally {
        await browser.close();
      }
    },
  );
});
