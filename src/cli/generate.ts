/** `attnviz generate`: continue a text with a decoder, optionally keeping the attention. */
import { writeAttentionFile } from '../core/files.js';
import { AttnvizError } from '../core/errors.js';
import { generateWith } from '../models/model.js';
import { loadForCli, numberOption, optionalString, positiveInteger, required, type Command } from './command.js';
import { outputFormats, writeImage, writeText } from './outputs.js';

export const generate: Command = {
  name: 'generate',
  synopsis: `generate --model <folder|hub id|file.gguf> [--prompt "<text>"] --max-new-tokens N
         [--temperature T] [--top-p P] [--seed S] [--out <file.safetensors>]
         [--report <steps.html|.json|.png> [--alternatives K]]`,
  description: `Continue the prompt (without one: from BOS) with a decoder (Llama, Mistral, Qwen2, Qwen3, Gemma 2
and 3, Phi-3, OLMo 2, Falcon; checkpoints or GGUF files) and print the text; --out writes the attention over
prompt + generated tokens. --temperature 0 is greedy (defaults: temperature 1, top-p 0.9, a random seed,
printed so a run can be repeated). --report: the generation step by step (a step slider; each token's
probability and the K most likely tokens, default 5; the attention of the position that produced it over its
context; docs/analysis.md).`,
  options: {
    model: { type: 'string' },
    prompt: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string', short: 'o' },
    'allow-unused': { type: 'boolean' },
    report: { type: 'string' },
    alternatives: { type: 'string' },
  },
  async run(v) {
    const model = required(v, 'model');
    const maxNewTokens = positiveInteger(v, 'max-new-tokens');
    if (maxNewTokens === undefined) throw new AttnvizError('missing --max-new-tokens');
    const temperature = numberOption(v, 'temperature', (n) => n >= 0, 'a number ≥ 0') ?? 1;
    const topP = numberOption(v, 'top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]') ?? 0.9;
    const seed = numberOption(v, 'seed', (n) => Number.isSafeInteger(n) && n >= 0, 'a non-negative integer');
    const out = optionalString(v, 'out') ?? null;
    const report = optionalString(v, 'report') ?? null;
    const reportFormat =
      report === null ? null : outputFormats([report], ['html', 'json', 'png'] as const, '--report')[0];
    const alternatives = positiveInteger(v, 'alternatives') ?? (report === null ? 0 : 5);
    const m = await loadForCli(model, v, { extract: out !== null || report !== null });
    try {
      const prompt = optionalString(v, 'prompt') ?? null;
      const g = await generateWith(m, prompt, { maxNewTokens, temperature, topP, seed, alternatives });
      console.log(g.text);
      if (report !== null && g.attention) {
        // Loaded when a report is asked for, not at every CLI start (they import the views).
        const { renderReport, reportJson, stepsReport } = await import('../export/report.js');
        const data = stepsReport(g, model, prompt ?? '', temperature);
        const html = () => renderReport(data, { a: g.attention! }, `attnviz generate — ${model}`);
        if (reportFormat === 'json') await writeText(report, reportJson(data));
        else if (reportFormat === 'html') await writeText(report, html());
        // Drawn in Node (export/image.ts), loaded only for an image.
        else await writeImage(report, (await import('../export/image.js')).reportPng(data, { a: g.attention }));
        console.error(`wrote ${report}: ${g.steps?.length ?? 0} steps`);
      }
      if (temperature > 0 && seed === undefined) console.error(`seed ${g.seed} (--seed ${g.seed} repeats this text)`);
      if (out !== null && g.attention) {
        await writeAttentionFile(out, g.attention);
        const [layers, heads, T] = g.attention.attention.dims;
        console.error(
          `wrote ${out}: ${layers} layers × ${heads} heads × ${T} tokens (${g.promptLength} from the prompt)`,
        );
      }
    } finally {
      await m.release();
    }
  },
};
