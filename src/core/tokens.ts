/** Token strings for display and matching. The data keeps tokens exactly as the tokenizer produced them. */

/**
 * Readable token text: the word-start markers of byte-level BPE (`Ġ`) and SentencePiece (`▁`) are dropped
 * (the token boundary already shows them), newlines (`Ċ`, `<0x0A>`) become `↵`, old BPE's `</w>` goes;
 * WordPiece's `##` stays, since it tells a continuation from a word.
 */
export function prettifyToken(token: string): string {
  const t = token
    .replace(/^[Ġ▁]/, '')
    .replace(/Ċ|<0x0A>/g, '↵')
    .replace(/<\/w>$/, '')
    .replace(/[Ġ▁]/g, ' ');
  return t === '' ? token : t;
}

const SPECIAL = /^(\[(CLS|SEP|PAD|MASK|UNK)\]|<\/?s>|<pad>|<unk>|<mask>|<\|[a-z_]+\|>|<bos>|<eos>)$/i;

/** Special tokens ([CLS], [SEP], <s>, </s>, <|endoftext|>, …), which views can hide. */
export function isSpecialToken(token: string): boolean {
  return SPECIAL.test(token);
}

/** Which tokens are special: the tokenizer's exact mask when the data carries one, else the guess above. */
export function specialMask(tokens: readonly string[], special?: readonly boolean[]): boolean[] {
  return special?.length === tokens.length ? [...special] : tokens.map(isSpecialToken);
}
