/**
 * The tokenizer of Universal Sentence Encoder lite (the embedded model), as `Tokenizer` in
 * @tensorflow-models/universal-sentence-encoder 1.3 (Apache-2.0) computes it: a Viterbi search over the
 * sentencepiece vocabulary's pieces and scores, a port of SentencePiece's EncodeAsIds. Ported rather than
 * imported because that package's tokenizer module imports all of TF.js (tfjs-core and the converter, for
 * `loadTokenizer`'s fetch), which the embedded model no longer runs on. Its behaviour is kept to the letter,
 * quirks included — symbols are UTF-16 code units, an unmatched symbol is piece 0 (the unknown piece) with
 * score 0, ties go to the later piece, consecutive unknowns merge — and test/server-embedded-model.test.ts
 * compares the two on many texts.
 */

/** [piece, score] pairs: vocab.json. A few scores are null (read as 0, as the package does). */
export type Vocabulary = readonly (readonly [string, number | null])[];

const SEPARATOR = '\u2581';
/** The first pieces are the unknown piece, control and user-defined symbols: never matched. */
const RESERVED = 6;

interface TrieNode {
  children: Map<string, TrieNode>;
  /** Set where a piece ends: its id and score. */
  piece?: { index: number; score: number | null };
}

/** One lattice edge: a piece of `length` symbols. */
interface Edge {
  length: number;
  score: number | null;
  index: number;
}

export class UseTokenizer {
  private readonly root: TrieNode = { children: new Map() };

  constructor(private readonly vocabulary: Vocabulary) {
    for (let i = RESERVED; i < vocabulary.length; i++) {
      let node = this.root;
      for (const symbol of vocabulary[i][0].split('')) {
        let child = node.children.get(symbol);
        if (!child) node.children.set(symbol, (child = { children: new Map() }));
        node = child;
      }
      node.piece = { index: i, score: vocabulary[i][1] };
    }
  }

  encode(input: string): number[] {
    const normalized = input.normalize('NFKC');
    const text = normalized.length > 0 ? SEPARATOR + normalized.replace(/ /g, SEPARATOR) : normalized;
    const symbols = text.split('');
    const n = symbols.length;
    // ends[e]: the edges ending at e, by start position, then in the trie's order (the package's lattice).
    const ends: Edge[][] = Array.from({ length: n + 1 }, () => []);
    for (let i = 0; i < n; i++) for (const edge of this.prefixes(symbols, i)) ends[i + edge.length].push(edge);
    const best = new Array<number>(n + 1).fill(0);
    const words = new Array<number>(n + 1).fill(0);
    for (let end = 0; end <= n; end++)
      for (const edge of ends[end]) {
        const score = (edge.score ?? 0) + best[end - edge.length];
        if (best[end] === 0 || score >= best[end]) {
          best[end] = score;
          words[end] = edge.index;
        }
      }
    const backwards: number[] = [];
    for (let at = n; at > 0; at -= this.vocabulary[words[at]][0].length) backwards.push(words[at]);
    const ids: number[] = [];
    backwards.forEach((id, i) => {
      if (!(id === 0 && i > 0 && backwards[i - 1] === 0)) ids.push(id);
    });
    return ids.reverse();
  }

  /** The pieces that start `symbols` at `from`, shortest first; the unknown piece if none does. */
  private prefixes(symbols: string[], from: number): Edge[] {
    const edges: Edge[] = [];
    let node = this.root.children.get(symbols[from]);
    for (let i = from; i < symbols.length && node; i++) {
      if (node.piece) edges.push({ length: i - from + 1, ...node.piece });
      node = node.children.get(symbols[i + 1]);
    }
    return edges.length ? edges : [{ length: 1, score: 0, index: 0 }];
  }
}
