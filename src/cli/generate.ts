/** `attnviz generate`: continue a text with a decoder, optionally keeping the attention. */
import { writeAttentionFile } from '../core/attention-file.js';
import { AttnvizError } from '../core/errors.js';
import { loadModel } from '../models/load-model.js';
import { generateWith } from '../models/model.js';
import { numberOption, optionalString, positiveInteger, required, type Command } from './command.js';

export const generate: Command = {
  name: 'generate',
  synopsis: `generate --model <folder|hub id|file.gguf> [--prompt "<text>"] --max-new-tokens N
         [--temperature T] [--top-p P] [--seed S] [--out <file.safetensors>]`,
  description: `Continue the prompt (without one: from BOS) with a decoder (Llama, Mistral, Qwen2, GGUF llama) and
print the text; --out writes the attention over prompt + generated tokens. --temperature 0 is greedy
(defaults: temperature 1, top-p 0.9, a random seed, printed so a run can be repeated).`,
  options: {
    model: { type: 'string' },
    prompt: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string', short: 'o' },
  },
  async run(v) {
    const model = required(v, 'model');
    const maxNewTokens = positiveInteger(v, 'max-new-tokens');
    if (maxNewTokens === undefined) throw new AttnvizError('missing --max-new-tokens');
    const temperature = numberOption(v, 'temperature', (n) => n >= 0, 'a number ≥ 0') ?? 1;
    const topP = numberOption(v, 'top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]') ?? 0.9;
    const seed = numberOption(v, 'seed', (n) => Number.isSafeInteger(n) && n >= 0, 'a non-negative integer');
    const out = optionalString(v, 'out') ?? null;
    const m = await loadModel(model, { extract: out !== null });
    try {
      const prompt = optionalString(v, 'prompt') ?? null;
      const g = await generateWith(m, prompt, { maxNewTokens, temperature, topP, seed });
      console.log(g.text);
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
