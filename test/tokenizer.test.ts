import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttnvizError } from '../src/core/errors.js';
import { loadTokenizer, type TextTokenizer } from '../src/load/tokenizer.js';
import { HAVE_SHARED, SHARED } from './shared.js';

const golden = join(SHARED, 'golden');

interface GoldenInput {
  key: string;
  text: string;
  text_pair: string | null;
  ids: number[];
  tokens: string[];
  token_type_ids?: number[];
}

const MODELS = ['bert-tiny', 'gpt2-tiny', 'roberta-tiny', 'llama-tiny-mha'] as const;
type ModelName = (typeof MODELS)[number];
/** The models that also ship the slow tokenizer files. */
const LEGACY: readonly ModelName[] = ['bert-tiny', 'gpt2-tiny', 'roberta-tiny'];

const modelDir = (name: ModelName) => join(golden, 'models', name);
const goldenInputs = (name: ModelName): GoldenInput[] =>
  JSON.parse(readFileSync(join(golden, 'cases', 'tokenization', `${name}.json`), 'utf8')).inputs;
const modelType = (name: ModelName): string =>
  JSON.parse(readFileSync(join(modelDir(name), 'config.json'), 'utf8')).model_type;

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'attnviz-tokenizer-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh folder under the scratch dir holding `files` (name → contents). */
function folder(name: string, files: Record<string, string> = {}): string {
  const dir = join(scratch, name);
  mkdirSync(dir);
  for (const [file, contents] of Object.entries(files)) writeFileSync(join(dir, file), contents);
  return dir;
}

/** A copy of a golden model's tokenizer files without tokenizer.json, so only the slow files remain. */
function legacyCopy(name: ModelName): string {
  const dir = folder(`${name}-legacy`);
  for (const file of readdirSync(modelDir(name))) {
    if (/^(vocab\.txt|vocab\.json|merges\.txt|tokenizer_config\.json|special_tokens_map\.json)$/.test(file)) {
      copyFileSync(join(modelDir(name), file), join(dir, file));
    }
  }
  return dir;
}

function expectGolden(tokenizer: TextTokenizer, input: GoldenInput): void {
  const encoded = tokenizer.encode(input.text, input.text_pair);
  expect(encoded.tokens).toEqual(input.tokens);
  expect(encoded.ids).toEqual(input.ids);
  if (input.token_type_ids) expect(encoded.typeIds).toEqual(input.token_type_ids);
  expect(encoded.sentenceBStart === null).toBe(input.text_pair === null);
}

describe.skipIf(!HAVE_SHARED)('golden tokenizations', () => {
  const sources = MODELS.flatMap((name) => [
    { name, source: 'tokenizer.json', dir: () => modelDir(name) },
    ...(LEGACY.includes(name) ? [{ name, source: 'slow files only', dir: () => legacyCopy(name) }] : []),
  ]);
  describe.each(sources)('$name from $source', ({ name, dir }) => {
    let tokenizer: TextTokenizer;
    beforeAll(async () => {
      tokenizer = await loadTokenizer(dir(), modelType(name));
    });
    it.each(HAVE_SHARED ? goldenInputs(name) : [])('$key', (input) => expectGolden(tokenizer, input));
  });

  it.each(['gpt2-tiny', 'llama-tiny-mha'] as const)(
    '%s: merges as ["a", "b"] pairs give the same tokens',
    async (name) => {
      const json = JSON.parse(readFileSync(join(modelDir(name), 'tokenizer.json'), 'utf8'));
      expect(typeof json.model.merges[0]).toBe('string');
      json.model.merges = json.model.merges.map((merge: string) => merge.split(' '));
      const dir = folder(`${name}-pair-merges`, { 'tokenizer.json': JSON.stringify(json) });
      copyFileSync(join(modelDir(name), 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
      const tokenizer = await loadTokenizer(dir, modelType(name));
      for (const input of goldenInputs(name)) expectGolden(tokenizer, input);
    },
  );

  it('bert: do_lower_case false with vocab.txt keeps case (the uncased vocab then has no "The")', async () => {
    const dir = folder('bert-cased', { 'tokenizer_config.json': JSON.stringify({ do_lower_case: false }) });
    copyFileSync(join(modelDir('bert-tiny'), 'vocab.txt'), join(dir, 'vocab.txt'));
    const tokenizer = await loadTokenizer(dir, 'bert');
    expect(tokenizer.encode('The cat sat.').tokens).toEqual(['[CLS]', '[UNK]', 'cat', 'sat', '.', '[SEP]']);
    // strip_accents (null) follows do_lower_case, so the accent stays, and the uncased vocab has no 'é'/'##é'.
    expect(tokenizer.encode('café cafe').tokens).toEqual(['[CLS]', '[UNK]', 'cafe', '[SEP]']);
  });

  describe('pairs', () => {
    const pairOf = (name: ModelName) => goldenInputs(name).find((input) => input.key === 'cat_pair')!;
    const [first, second] = ['The cat sat on the mat.', 'The cat lay on the rug.'];

    it('bert: B starts at the first type id 1, after [SEP]', async () => {
      const tokenizer = await loadTokenizer(modelDir('bert-tiny'), 'bert');
      const encoded = tokenizer.encode(first, second);
      expect(encoded.ids).toEqual(pairOf('bert-tiny').ids);
      expect(encoded.sentenceBStart).toBe(encoded.typeIds.indexOf(1));
      expect(encoded.sentenceBStart).toBe(9);
      expect(encoded.tokens.slice(8, 10)).toEqual(['[SEP]', 'the']);
    });

    it('roberta: B starts after </s></s>, type ids all 0', async () => {
      const tokenizer = await loadTokenizer(modelDir('roberta-tiny'), 'roberta');
      const encoded = tokenizer.encode(first, second);
      expect(encoded.ids).toEqual(pairOf('roberta-tiny').ids);
      expect(encoded.sentenceBStart).toBe(10);
      expect(encoded.tokens.slice(8, 11)).toEqual(['</s>', '</s>', 'The']);
      expect(encoded.typeIds.every((t) => t === 0)).toBe(true);
    });

    it.each([
      ['gpt2-tiny', 7, 'ĠThe'],
      ['llama-tiny-mha', 11, '▁The'],
    ] as const)(
      '%s: a pair is the texts joined by one space; B starts after the first text alone',
      async (name, start, token) => {
        const tokenizer = await loadTokenizer(modelDir(name), modelType(name));
        const joined = pairOf(name);
        expect(joined.text).toBe(`${first} ${second}`);
        const encoded = tokenizer.encode(first, second);
        expect(encoded.ids).toEqual(joined.ids);
        expect(encoded.sentenceBStart).toBe(start);
        expect(encoded.tokens[start]).toBe(token);
        // The first text's own tokens (with BOS for Llama) are a prefix of the joined encoding.
        expect(encoded.ids.slice(0, start)).toEqual(tokenizer.encode(first).ids);
        expect(encoded.typeIds.every((t) => t === 0)).toBe(true);
      },
    );
  });

  it('decodes back to text', async () => {
    const gpt2 = await loadTokenizer(modelDir('gpt2-tiny'), 'gpt2');
    const text = 'Café, naïve résumé 🎉 北京.';
    expect(gpt2.decode(gpt2.encode(text).ids)).toBe(text);
    const bert = await loadTokenizer(modelDir('bert-tiny'), 'bert');
    expect(bert.decode(bert.encode('The cat sat on the mat.').ids)).toBe('[CLS] the cat sat on the mat. [SEP]');
  });
});

describe('tokenizer errors and small folders', () => {
  const tinyVocab = `${['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'cat', '##s', '.'].join('\n')}\n`;

  it('builds a WordPiece tokenizer from vocab.txt alone', async () => {
    const tokenizer = await loadTokenizer(folder('tiny-bert', { 'vocab.txt': tinyVocab }), 'bert');
    const encoded = tokenizer.encode('The cats.');
    expect(encoded.tokens).toEqual(['[CLS]', 'the', 'cat', '##s', '.', '[SEP]']);
    expect(encoded.ids).toEqual([2, 5, 6, 7, 8, 3]);
    expect(encoded.special).toEqual([true, false, false, false, false, true]);
    expect(encoded.sentenceBStart).toBeNull();
  });

  it('a folder without tokenizer files names the folder and the files looked for', async () => {
    const dir = folder('empty');
    await expect(loadTokenizer(dir, 'bert')).rejects.toThrow(AttnvizError);
    await expect(loadTokenizer(dir, 'bert')).rejects.toThrow(
      `no tokenizer in ${dir}: found neither tokenizer.json nor vocab.txt`,
    );
    await expect(loadTokenizer(dir, 'gpt2')).rejects.toThrow(
      `no tokenizer in ${dir}: found neither tokenizer.json nor vocab.json + merges.txt`,
    );
  });

  it('empty or blank text is an AttnvizError', async () => {
    const tokenizer = await loadTokenizer(folder('tiny-bert-empty', { 'vocab.txt': tinyVocab }), 'bert');
    for (const text of ['', '  \n\t']) {
      expect(() => tokenizer.encode(text)).toThrow(AttnvizError);
      expect(() => tokenizer.encode(text)).toThrow('text is empty');
    }
    expect(() => tokenizer.encode('the cat', ' ')).toThrow('second text of the pair is empty');
  });
});
