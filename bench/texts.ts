/** Benchmark inputs: English texts of an exact token count under a model's own tokenizer. */

export const PASSAGE = `
When a reader meets a long sentence, some words matter more than others for understanding the rest. A pronoun
needs the noun it stands for, a verb needs its subject, and a closing bracket needs the one that opened it.
Transformer models make this idea concrete. At every layer, each position in the text sends out a query, and
every position answers with a key; the better a key matches a query, the more of that position's value flows
into the next layer. The weights of this mixing are the attention, and because there are several heads in
every layer, the model can follow several kinds of relation at once. One head may link each word to the word
just before it, another may gather the whole sentence into the first token, and a third may connect a verb
with its object even when a long clause stands between them. Looking at these patterns is one of the oldest
ways to study what such a model has learned. It is not a full explanation, because the values and the layers
that follow can undo or reshape what a head selects, but it shows where information can travel, and it often
reveals surprising habits. Some heads attend almost entirely to punctuation or to separator tokens, which
seems to act as a kind of resting place when the head has nothing useful to do. Others track syntax with
remarkable accuracy, following the path from a word to its grammatical parent across the sentence. In models
trained to predict the next word, a position may look only at earlier positions, so the patterns form a
triangle, and heads appear that copy a token which followed an earlier occurrence of the current token, a
simple mechanism that lets the model continue patterns it has already seen in the text. The village stood at
the edge of a wide valley, where the river turned slowly toward the sea. In the spring the fields were green
and the orchards were white with blossom, and in the autumn the farmers carried apples and pears to the market
in the old town on the hill. The children walked to school along the river path, counting the boats and the
herons, and in the evenings their parents sat outside the houses and talked about the weather, the harvest and
the news that travellers brought from the city. Nobody could remember when the bridge had been built, but
everybody agreed that it was older than the church, and the church was older than anyone's grandfather.
`
  .trim()
  .split(/\s+/);

/**
 * A text of exactly `target` tokens (special tokens included) as `count` measures it: the passage, repeated as
 * needed, trimmed word by word to the longest prefix that does not exceed the target, then topped up with
 * single-token filler words if a multi-token word made the count jump past it.
 */
export function exactText(count: (text: string) => number, target: number): string {
  let words = [...PASSAGE];
  while (count(words.join(' ')) < target + 16) words = [...words, ...PASSAGE];
  let lo = 0,
    hi = words.length; // largest k with count(first k words) ≤ target
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (count(words.slice(0, mid).join(' ')) <= target) lo = mid;
    else hi = mid - 1;
  }
  for (let k = lo; k > 0; k--) {
    const base = words.slice(0, k).join(' ');
    const text = base + ' the'.repeat(Math.max(0, target - count(base)));
    if (count(text) === target) return text;
  }
  throw new Error(`could not build a text of exactly ${target} tokens`);
}
