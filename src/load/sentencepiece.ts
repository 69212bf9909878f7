/**
 * SentencePiece `.model` files (spiece.model, sentencepiece.bpe.model, spm.model, tokenizer.model, Marian's
 * source.spm / target.spm): the ModelProto of google/sentencepiece's sentencepiece_model.proto, read with
 * protobufjs (already what onnx-proto decodes ONNX with; maintained, and a schema of the few fields used here is
 * all it needs), then turned into the tokenizer.json that transformers' convert_slow_tokenizer writes for the
 * family (T5Converter, XLMRobertaConverter, CamembertConverter, MBartConverter, MBart50Converter,
 * AlbertConverter, DebertaV2Converter, LlamaConverter), so that a folder with only the `.model` file tokenizes
 * like one with tokenizer.json. Unigram models become tokenizers' Unigram over the pieces and scores; BPE models
 * (Llama's tokenizer.model) its BPE with the merges ordered by piece score, with byte fallback as the model says.
 */
import protobuf from 'protobufjs';
import { AttnvizError, check } from '../core/errors.js';
import {
  addedToken,
  bpeModel,
  sequence,
  specialToken,
  templateProcessing,
  type AddedTokenJson,
  type JsonObject,
  type TemplateItem,
} from './tokenizer-json.js';

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
  removeExtraWhitespaces: boolean;
}

interface Decoded {
  pieces?: { piece?: string; score?: number; type?: number }[];
  trainerSpec?: { modelType?: number; byteFallback?: boolean; unkId?: number };
  normalizerSpec?: { precompiledCharsmap?: Uint8Array; addDummyPrefix?: boolean; removeExtraWhitespaces?: boolean };
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
    removeExtraWhitespaces: m.normalizerSpec?.removeExtraWhitespaces ?? true,
  };
}

/** mBART's language codes (transformers' FAIRSEQ_LANGUAGE_CODES), after the pieces; mBART-50 adds 27 more. */
const MBART_LANGUAGES = [
  ...['ar_AR', 'cs_CZ', 'de_DE', 'en_XX', 'es_XX', 'et_EE', 'fi_FI', 'fr_XX', 'gu_IN', 'hi_IN', 'it_IT', 'ja_XX'],
  ...['kk_KZ', 'ko_KR', 'lt_LT', 'lv_LV', 'my_MM', 'ne_NP', 'nl_XX', 'ro_RO', 'ru_RU', 'si_LK', 'tr_TR', 'vi_VN'],
  'zh_CN',
];
const MBART50_LANGUAGES = [
  ...MBART_LANGUAGES,
  ...['af_ZA', 'az_AZ', 'bn_IN', 'fa_IR', 'he_IL', 'hr_HR', 'id_ID', 'ka_GE', 'km_KH', 'mk_MK', 'ml_IN', 'mn_MN'],
  ...['mr_IN', 'pl_PL', 'ps_AF', 'pt_XX', 'sv_SE', 'sw_KE', 'ta_IN', 'te_IN', 'th_TH', 'tl_XX', 'uk_UA', 'ur_PK'],
  ...['xh_ZA', 'gl_ES', 'sl_SI'],
];
/** fairseq's first four ids, which XLM-R's, mBART's (and, renamed, CamemBERT's) vocabularies start with. */
const FAIRSEQ_HEAD: [string, number][] = [
  ['<s>', 0],
  ['<pad>', 0],
  ['</s>', 0],
  ['<unk>', 0],
];
/** Families whose SentencePiece model alone is converted. */
export const SENTENCEPIECE_FAMILIES = [
  't5',
  'mt5',
  'xlm-roberta',
  'camembert',
  'mbart',
  'albert',
  'deberta-v2',
  'llama',
  'mistral',
  'phi3',
];
const MODEL_TYPES: Record<number, string> = { 1: 'Unigram', 2: 'BPE', 3: 'word', 4: 'char' };

/**
 * The tokenizer.json transformers' converter writes for `modelType`'s slow tokenizer over this model; `config`
 * is tokenizer_config.json (special tokens, do_lower_case, extra_ids, src_lang, legacy, add_bos_token, …).
 * `marian` gives the pieces alone (no template): MarianTokenizer maps them to vocab.json's ids itself.
 */
export function sentencePieceJson(
  sp: SentencePieceModel,
  modelType: string,
  config: JsonObject,
  file: string,
): JsonObject {
  check(
    sp.modelType === 1 || sp.modelType === 2,
    `${file}: SentencePiece model type ${MODEL_TYPES[sp.modelType] ?? sp.modelType} ` +
      `is not supported (only Unigram and BPE models are converted; use a folder with a tokenizer.json)`,
  );
  const text = (key: string, fallback: string) =>
    typeof config[key] === 'string' ? (config[key] as string) : fallback;
  const pieces: [string, number][] = sp.pieces.map((p) => [p.piece, p.score]);
  let vocab = pieces;
  let unkId = sp.unkId;
  const roberta = {
    single: [specialToken('<s>'), sequence('A'), specialToken('</s>')],
    pair: [
      specialToken('<s>'),
      sequence('A'),
      specialToken('</s>'),
      specialToken('</s>'),
      sequence('B'),
      specialToken('</s>'),
    ],
  };
  let single: TemplateItem[], pair: TemplateItem[];
  const normalizers: JsonObject[] = [];
  // The fairseq families' <mask> absorbs the space before it (AddedToken lstrip in their slow tokenizers).
  let lstripped: string | null = null;
  let llama = false;
  switch (modelType) {
    case 't5':
    case 'mt5': {
      // T5Converter: the extra ids <extra_id_99> … <extra_id_0> after the pieces; "A </s>".
      const extra = typeof config.extra_ids === 'number' ? config.extra_ids : 100;
      vocab = [...pieces];
      for (let i = extra - 1; i >= 0; i--) vocab.push([`<extra_id_${i}>`, 0]);
      single = [sequence('A'), specialToken('</s>')];
      pair = [sequence('A'), specialToken('</s>'), sequence('B'), specialToken('</s>')];
      break;
    }
    case 'xlm-roberta':
      // XLMRobertaConverter: fairseq's ids — <s> <pad> </s> <unk>, the pieces from the fourth on, <mask> last.
      vocab = [...FAIRSEQ_HEAD, ...pieces.slice(3), ['<mask>', 0]];
      unkId = 3;
      ({ single, pair } = roberta);
      lstripped = '<mask>';
      break;
    case 'camembert':
      // CamembertConverter (CamembertTokenizer's fairseq_offset 4): five ids of its own, then every piece but
      // SentencePiece's <unk> (piece i → id i + 4), <mask> last.
      vocab = [
        ['<s>NOTUSED', 0],
        ['<pad>', 0],
        ['</s>NOTUSED', 0],
        ['<unk>', 0],
        ['<unk>NOTUSED', -100],
        ...pieces.slice(1),
        ['<mask>', 0],
      ];
      unkId = 3;
      ({ single, pair } = roberta);
      lstripped = '<mask>';
      break;
    case 'mbart': {
      // MBartConverter / MBart50Converter: fairseq's ids, the language codes and <mask> after the pieces; the
      // source language code (tokenizer_config src_lang, default en_XX) closes the text (mBART) or opens it (50).
      const fifty = /^MBart50Tokenizer(Fast)?$/.test(text('tokenizer_class', ''));
      const codes = fifty ? MBART50_LANGUAGES : MBART_LANGUAGES;
      vocab = [...FAIRSEQ_HEAD, ...pieces.slice(3), ...codes.map((c): [string, number] => [c, 0]), ['<mask>', 0]];
      unkId = 3;
      const lang = text('src_lang', 'en_XX');
      check(codes.includes(lang), `${file}: src_lang ${lang} is not one of mBART's language codes`);
      single = fifty
        ? [specialToken(lang), sequence('A'), specialToken('</s>')]
        : [sequence('A'), specialToken('</s>'), specialToken(lang)];
      pair = fifty
        ? [specialToken(lang), sequence('A'), sequence('B'), specialToken('</s>')]
        : [sequence('A'), sequence('B'), specialToken('</s>'), specialToken(lang)];
      lstripped = '<mask>';
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
      single = [specialToken(cls), sequence('A'), specialToken(sep)];
      pair = [specialToken(cls), sequence('A'), specialToken(sep), sequence('B', 1), specialToken(sep, 1)];
      break;
    }
    case 'llama':
    case 'mistral':
    case 'phi3': {
      // LlamaTokenizer (Llama 2, Mistral, Phi-3 ship its tokenizer.model): BOS A (add_bos_token, default true),
      // EOS after it when add_eos_token; pairs as LlamaTokenizerFast's update_post_processor (B with type 1).
      const cls = text('tokenizer_class', 'LlamaTokenizer');
      check(
        /^LlamaTokenizer(Fast)?$/.test(cls),
        `${file}: a ${cls} tokenizer.model alone is not supported (only LlamaTokenizer's; use a tokenizer.json)`,
      );
      const bos = text('bos_token', '<s>'),
        eos = text('eos_token', '</s>');
      const around = (s: 'A' | 'B', typeId: number): TemplateItem[] => [
        ...(config.add_bos_token !== false ? [specialToken(bos, typeId)] : []),
        sequence(s, typeId),
        ...(config.add_eos_token === true ? [specialToken(eos, typeId)] : []),
      ];
      single = around('A', 0);
      pair = [...single, ...around('B', 1)];
      unkId = 0;
      llama = true;
      break;
    }
    case 'marian':
      single = [sequence('A')];
      pair = [sequence('A'), sequence('B')];
      break;
    default:
      throw new AttnvizError(
        `${file}: ${modelType}'s SentencePiece model alone is not supported ` +
          `(supported: ${SENTENCEPIECE_FAMILIES.join(', ')}, marian; use a folder with a tokenizer.json)`,
      );
  }
  const ids = Object.fromEntries(vocab.map(([piece], i) => [piece, i]));
  const specials = [...new Set([...single, ...pair].flatMap((t) => ('SpecialToken' in t ? [t.SpecialToken.id] : [])))];
  for (const s of specials)
    check(Object.hasOwn(ids, s), `${file} has no piece ${s}, which ${modelType}'s template needs`);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens(sp, vocab, unkId, config, lstripped, modelType === 'marian'),
    ...(llama ? llamaPipeline(sp, config, file) : spmPipeline(sp, normalizers)),
    post_processor: templateProcessing(single, pair, Object.fromEntries(specials.map((s) => [s, ids[s]]))),
    model:
      sp.modelType === 1
        ? { type: 'Unigram', unk_id: unkId, vocab, byte_fallback: sp.byteFallback }
        : bpeModel(ids, bpeMerges(sp, vocab), { unk: vocab[unkId][0], byteFallback: sp.byteFallback }),
  };
}

/**
 * The added tokens — matched whole in the text, never split: control and user-defined pieces (<s>, </s>,
 * [CLS], …), the unknown piece, the entries a converter adds (<mask>, <extra_id_N>, language codes) and
 * tokenizer_config's added_tokens_decoder (which wins, as in transformers). `marianSpecials`: MarianTokenizer
 * also splits on its special tokens that are not pieces (<pad>), given ids past the pieces (vocab.json maps them).
 */
function addedTokens(
  sp: SentencePieceModel,
  vocab: [string, number][],
  unkId: number,
  config: JsonObject,
  lstripped: string | null,
  marianSpecials: boolean,
): AddedTokenJson[] {
  const types = new Map(sp.pieces.map((p) => [p.piece, p.type]));
  const token = (id: number, content: string, special = true) =>
    addedToken(id, content, { lstrip: content === lstripped, special });
  const added = new Map<number, AddedTokenJson>();
  vocab.forEach(([piece], id) => {
    const type = types.get(piece);
    if (id === unkId || type === undefined || type === PIECE_TYPE.control || type === PIECE_TYPE.userDefined)
      added.set(id, token(id, piece, type !== PIECE_TYPE.userDefined));
  });
  if (marianSpecials) {
    const known = new Set(vocab.map(([piece]) => piece));
    const names = [config.eos_token ?? '</s>', config.unk_token ?? '<unk>', config.pad_token ?? '<pad>'];
    const extra = Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : [];
    let next = vocab.length;
    for (const name of new Set([...names, ...extra]))
      if (typeof name === 'string' && !known.has(name)) added.set(next, token(next++, name));
  }
  const decoder = config.added_tokens_decoder;
  if (decoder !== null && typeof decoder === 'object') {
    for (const [key, value] of Object.entries(decoder as Record<string, unknown>)) {
      const id = Number(key);
      const v = value as Partial<AddedTokenJson> | null;
      if (!Number.isSafeInteger(id) || id < 0 || typeof v?.content !== 'string') continue;
      const flag = (k: 'lstrip' | 'rstrip' | 'single_word' | 'normalized') => v[k] === true;
      added.set(
        id,
        addedToken(id, v.content, {
          single_word: flag('single_word'),
          lstrip: flag('lstrip'),
          rstrip: flag('rstrip'),
          normalized: flag('normalized'),
          special: v.special !== false,
        }),
      );
    }
  }
  return [...added.values()].sort((a, b) => a.id - b.id);
}

/**
 * SpmConverter's normalizer, pre-tokenizer and decoder: `before` (the family's own normalizers), the precompiled
 * charsmap, trailing spaces stripped and runs of spaces collapsed, then Metaspace (prefix ▁ unless the model's
 * add_dummy_prefix is off).
 */
function spmPipeline(sp: SentencePieceModel, before: JsonObject[]): JsonObject {
  const normalizers = [...before];
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
  return { normalizer: { type: 'Sequence', normalizers }, pre_tokenizer: metaspace, decoder: metaspace };
}

/**
 * LlamaConverter's pipeline, as LlamaTokenizer tokenizes (models with SentencePiece's identity normalizer).
 * Legacy (tokenizer_config `legacy` absent or true, the slow tokenizer's default): every text between special
 * tokens is encoded by SentencePiece alone — spaces as ▁, and ▁ prefixed when the model's add_dummy_prefix is
 * on. `legacy: false`: ▁ prefixed to the text's start only (add_prefix_space, default true), not after a special
 * token. Decoding: ▁ as spaces, byte pieces as bytes, the prefix space dropped.
 */
function llamaPipeline(sp: SentencePieceModel, config: JsonObject, file: string): JsonObject {
  // LlamaConverter ignores the model's normalizer; LlamaTokenizer (SentencePiece) applies it. Llama's is identity.
  check(
    sp.precompiledCharsmap.length === 0 && !sp.removeExtraWhitespaces,
    `${file}: a normalizer (a character map or remove_extra_whitespaces) is not supported in a Llama-type ` +
      `tokenizer.model (use a folder with a tokenizer.json)`,
  );
  const legacy = config.legacy !== false;
  const prefix = legacy ? sp.addDummyPrefix : config.add_prefix_space !== false;
  const spaces = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };
  return {
    normalizer: legacy
      ? { type: 'Sequence', normalizers: [...(prefix ? [{ type: 'Prepend', prepend: '▁' }] : []), spaces] }
      : null,
    pre_tokenizer: legacy
      ? null
      : { type: 'Metaspace', replacement: '▁', prepend_scheme: prefix ? 'first' : 'never', split: false },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
  };
}

/**
 * A BPE model's merges, as transformers' generate_merges writes them: every split of each piece into two pieces
 * of the model (by their ids), ordered by the piece's score, highest first (on equal scores the longer left part
 * first). tokenizers' BPE then applies the lowest-ranked merge first, leftmost on ties — SentencePiece's BPE:
 * merge the adjacent pair whose concatenation is the piece with the highest score.
 */
function bpeMerges(sp: SentencePieceModel, vocab: [string, number][]): [string, string][] {
  const ids = new Map(sp.pieces.map((p, i) => [p.piece, i]));
  const scores = new Map(vocab);
  const merges: { left: string; right: string; score: number; leftLength: number; rightLength: number }[] = [];
  for (const [piece, score] of scores) {
    const chars = Array.from(piece);
    const local: { left: string; right: string; ids: [number, number]; leftLength: number }[] = [];
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join(''),
        right = chars.slice(i).join('');
      const l = ids.get(left),
        r = ids.get(right);
      if (l !== undefined && r !== undefined) local.push({ left, right, ids: [l, r], leftLength: i });
    }
    local.sort((a, b) => a.ids[0] - b.ids[0] || a.ids[1] - b.ids[1]);
    for (const m of local) merges.push({ ...m, score, rightLength: chars.length - m.leftLength });
  }
  merges.sort((a, b) => b.score - a.score || b.leftLength - a.leftLength || b.rightLength - a.rightLength);
  return merges.map((m) => [m.left, m.right]);
}

function replace(from: string, to: string): JsonObject {
  return { type: 'Replace', pattern: { String: from }, content: to };
}
