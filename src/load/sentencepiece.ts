/**
 * SentencePiece `.model` files (spiece.model, sentencepiece.bpe.model, spm.model): the ModelProto of
 * google/sentencepiece's sentencepiece_model.proto, read with protobufjs (already what onnx-proto decodes ONNX
 * with; maintained, and a schema of the few fields used here is all it needs), then turned into the
 * tokenizer.json that transformers' convert_slow_tokenizer writes for the family (T5Converter,
 * XLMRobertaConverter, AlbertConverter, DebertaV2Converter), so that a folder with only the `.model` file
 * tokenizes like one with tokenizer.json. Only Unigram models are converted (every family above trains one);
 * BPE-type models (Llama's tokenizer.model) are refused by name.
 */
import protobuf from 'protobufjs';
import { AttnvizError, check } from '../core/errors.js';

/** sentencepiece_model.proto, the fields read (numbers as in the .proto; proto2 defaults kept). */
const root = protobuf.Root.fromJSON({
  nested: {
    ModelProto: {
      fields: {
        pieces: { rule: 'repeated', type: 'SentencePiece', id: 1 },
        trainerSpec: { type: 'TrainerSpec', id: 2 },
        normalizerSpec: { type: 'NormalizerSpec', id: 3 },
      },
    },
    SentencePiece: {
      fields: {
        piece: { type: 'string', id: 1 },
        score: { type: 'float', id: 2 },
        type: { type: 'int32', id: 3, options: { default: 1 } },
      },
    },
    TrainerSpec: {
      fields: {
        modelType: { type: 'int32', id: 3, options: { default: 1 } },
        vocabSize: { type: 'int32', id: 4 },
        byteFallback: { type: 'bool', id: 35 },
        unkId: { type: 'int32', id: 40 },
      },
    },
    NormalizerSpec: {
      fields: {
        name: { type: 'string', id: 1 },
        precompiledCharsmap: { type: 'bytes', id: 2 },
        addDummyPrefix: { type: 'bool', id: 3, options: { default: true } },
        removeExtraWhitespaces: { type: 'bool', id: 4, options: { default: true } },
      },
    },
  },
});
const ModelProto = root.lookupType('ModelProto');

/** Piece types of sentencepiece_model.proto. */
export const PIECE_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface SentencePieceModel {
  pieces: { piece: string; score: number; type: number }[];
  /** 1 Unigram, 2 BPE, 3 word, 4 char. */
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
}

interface Decoded {
  pieces?: { piece?: string; score?: number; type?: number }[];
  trainerSpec?: { modelType?: number; byteFallback?: boolean; unkId?: number };
  normalizerSpec?: { precompiledCharsmap?: Uint8Array; addDummyPrefix?: boolean };
}

/** Decodes a `.model` file; `file` names it in errors. */
export function readSentencePiece(bytes: Uint8Array, file: string): SentencePieceModel {
  let m: Decoded;
  try {
    m = ModelProto.toObject(ModelProto.decode(bytes), { defaults: true }) as Decoded;
  } catch (e) {
    throw new AttnvizError(`${file} is not a SentencePiece model (${(e as Error).message})`);
  }
  const pieces = (m.pieces ?? []).map((p) => ({ piece: p.piece ?? '', score: p.score ?? 0, type: p.type ?? 1 }));
  check(pieces.length > 0, `${file} is not a SentencePiece model (no pieces)`);
  const modelType = m.trainerSpec?.modelType ?? 1;
  const unkId = m.trainerSpec?.unkId ?? 0;
  check(
    Number.isInteger(unkId) && unkId >= 0 && unkId < pieces.length,
    `${file}: unk_id ${unkId} is not a piece (${pieces.length} pieces)`,
  );
  return {
    pieces,
    modelType,
    byteFallback: m.trainerSpec?.byteFallback ?? false,
    unkId,
    precompiledCharsmap: m.normalizerSpec?.precompiledCharsmap ?? new Uint8Array(0),
    addDummyPrefix: m.normalizerSpec?.addDummyPrefix ?? true,
  };
}

type Json = Record<string, unknown>;
type TemplateItem =
  | { SpecialToken: { id: string; type_id: number } }
  | { Sequence: { id: 'A' | 'B'; type_id: number } };

/**
 * The tokenizer.json transformers' converter writes for `modelType`'s slow tokenizer over this model; `config`
 * is tokenizer_config.json (special tokens, do_lower_case, extra_ids).
 */
export function sentencePieceJson(sp: SentencePieceModel, modelType: string, config: Json, file: string): Json {
  check(
    sp.modelType === 1,
    `${file}: SentencePiece model type ` +
      `${({ 2: 'BPE', 3: 'word', 4: 'char' } as Record<number, string>)[sp.modelType] ?? sp.modelType} ` +
      `is not supported (only Unigram models are converted; use a folder with a tokenizer.json)`,
  );
  const text = (key: string, fallback: string) =>
    typeof config[key] === 'string' ? (config[key] as string) : fallback;
  let vocab: [string, number][] = sp.pieces.map((p) => [p.piece, p.score]);
  let unkId = sp.unkId;
  const seq = (id: 'A' | 'B', typeId = 0): TemplateItem => ({ Sequence: { id, type_id: typeId } });
  const tok = (id: string, typeId = 0): TemplateItem => ({ SpecialToken: { id, type_id: typeId } });
  let single: TemplateItem[], pair: TemplateItem[];
  const normalizers: Json[] = [];
  switch (modelType) {
    case 't5':
    case 'mt5': {
      // T5Converter: the extra ids <extra_id_99> … <extra_id_0> after the pieces; "A </s>".
      const extra = typeof config.extra_ids === 'number' ? config.extra_ids : 100;
      for (let i = extra - 1; i >= 0; i--) vocab.push([`<extra_id_${i}>`, 0]);
      single = [seq('A'), tok('</s>')];
      pair = [seq('A'), tok('</s>'), seq('B'), tok('</s>')];
      break;
    }
    case 'xlm-roberta': {
      // XLMRobertaConverter: fairseq's ids — <s> <pad> </s> <unk> first, the pieces from the fourth on, <mask> last.
      vocab = [['<s>', 0], ['<pad>', 0], ['</s>', 0], ['<unk>', 0], ...vocab.slice(3), ['<mask>', 0]];
      unkId = 3;
      single = [tok('<s>'), seq('A'), tok('</s>')];
      pair = [tok('<s>'), seq('A'), tok('</s>'), tok('</s>'), seq('B'), tok('</s>')];
      break;
    }
    case 'albert':
    case 'deberta-v2': {
      // AlbertConverter / DebertaV2Converter: [CLS] A [SEP] (B [SEP] with type 1); ALBERT lowercases and strips
      // accents by default, DeBERTa-v2 keeps case.
      const albert = modelType === 'albert';
      if (albert) normalizers.push(replace('``', '"'), replace("''", '"'));
      if (albert && config.keep_accents !== true) normalizers.push({ type: 'NFKD' }, { type: 'StripAccents' });
      if (config.do_lower_case === true || (albert && config.do_lower_case !== false))
        normalizers.push({ type: 'Lowercase' });
      const cls = text('cls_token', '[CLS]'),
        sep = text('sep_token', '[SEP]');
      single = [tok(cls), seq('A'), tok(sep)];
      pair = [tok(cls), seq('A'), tok(sep), seq('B', 1), tok(sep, 1)];
      break;
    }
    default:
      throw new AttnvizError(
        `${file}: ${modelType}'s SentencePiece model alone is not supported ` +
          `(supported: t5, mt5, xlm-roberta, albert, deberta-v2; use a folder with a tokenizer.json)`,
      );
  }
  const ids = new Map(vocab.map(([piece], i) => [piece, i]));
  const specials = [...new Set([...single, ...pair].flatMap((t) => ('SpecialToken' in t ? [t.SpecialToken.id] : [])))];
  for (const s of specials) check(ids.has(s), `${file} has no piece ${s}, which ${modelType}'s template needs`);
  // Control and user-defined pieces (<s>, </s>, [CLS], …), the unknown piece and the entries the converter adds
  // (<mask>, <extra_id_N>) are added tokens: matched whole in the text, never split.
  const types = new Map(sp.pieces.map((p) => [p.piece, p.type]));
  const added = vocab
    .map(([piece], id) => ({ piece, id, type: types.get(piece) }))
    .filter(
      ({ id, type }) =>
        id === unkId || type === undefined || type === PIECE_TYPE.control || type === PIECE_TYPE.userDefined,
    );
  // SpmConverter's normalizer: the precompiled charsmap, trailing spaces stripped, runs of spaces collapsed.
  if (sp.precompiledCharsmap.length > 0)
    normalizers.push({
      type: 'Precompiled',
      precompiled_charsmap: Buffer.from(sp.precompiledCharsmap).toString('base64'),
    });
  normalizers.push(
    { type: 'Strip', strip_left: false, strip_right: true },
    { type: 'Replace', pattern: { Regex: ' {2,}' }, content: '▁' },
  );
  const metaspace = {
    type: 'Metaspace',
    replacement: '▁',
    prepend_scheme: sp.addDummyPrefix ? 'always' : 'never',
    split: true,
  };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map(({ piece, id }) => ({
      id,
      content: piece,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'Sequence', normalizers },
    pre_tokenizer: metaspace,
    post_processor: {
      type: 'TemplateProcessing',
      single,
      pair,
      special_tokens: Object.fromEntries(specials.map((s) => [s, { id: s, ids: [ids.get(s)], tokens: [s] }])),
    },
    decoder: metaspace,
    model: { type: 'Unigram', unk_id: unkId, vocab, byte_fallback: sp.byteFallback },
  };
}

function replace(from: string, to: string): Json {
  return { type: 'Replace', pattern: { String: from }, content: to };
}
