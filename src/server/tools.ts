/**
 * The analysis tools behind the app's Compare, Heads and Generate tabs (docs/server-api.md): each answers a
 * report (analysis/report-data.ts) with the attentions it shows, the same report the CLI writes as HTML, so the
 * page draws it with the report pages (views/reports/). Compare answers JSON; the head finder and generation
 * run longer and answer Server-Sent Events (progress or tokens as they come, then `result`). Requests are
 * bounded like the attention requests: body size, text length, corpus size, tokens, time per model run.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CorpusScores,
  corpusLines,
  corpusTexts,
  type HeadScores,
  headScores,
  parsePattern,
} from '../analysis/head-metrics.js';
import type { EncodedAttention, HeadsReport, ToolResult } from '../analysis/report-data.js';
import type { Attention } from '../core/attention.js';
import { encodeBase85 } from '../core/base85.js';
import { encodeAttention } from '../core/encode.js';
import { AttnvizError } from '../core/errors.js';
import { bestTexts, compareReport, headsReport, keepLayers, stepsReport } from '../export/report.js';
import { cannotGenerate, generateWith } from '../models/model.js';
import { onlyFields, optionalBoolean, optionalString, readJsonBody } from './body.js';
import { eventStream } from './events.js';
import { attentionFor, checkLength, type Context, withTimeout } from './handlers.js';
import { HttpError, sendJson } from './http-error.js';
import { modelKey, parseModelSpec } from './models.js';

/** Most texts a head finder request may hold (each at most maxTextChars; the body at most maxBodyBytes). */
export const MAX_CORPUS_TEXTS = 2000;
/** Most tokens a generation request may ask for. */
export const MAX_NEW_TOKENS = 1024;

type Handler = (ctx: Context, req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * The attentions a report shows, encoded for the page: attention only (the report pages need no q/k), or with
 * q/k for a generation, which the app also opens in the neuron view.
 */
function encoded(
  ctx: Context,
  attentions: Record<string, Attention>,
  queryKey = false,
): Record<string, EncodedAttention> {
  const values = Object.values(attentions).reduce((n, a) => n + a.attention.data.length, 0);
  if (values > ctx.limits.overviewAbove)
    throw new HttpError(
      413,
      `the report would carry ${values.toLocaleString('en')} attention values; this server shows at most ` +
        `${ctx.limits.overviewAbove.toLocaleString('en')} in a page (shorter texts, or the attnviz command)`,
    );
  return Object.fromEntries(
    Object.entries(attentions).map(([name, a]) => {
      const bytes = encodeAttention(a, { queryKey });
      return [name, { bytes: bytes.length, base85: encodeBase85(bytes) }];
    }),
  );
}

/**
 * POST /api/compare: two texts on one model, or one text on two models that share a tokenizer (`modelB`).
 * With `from` and `to`, the question "attention from X to Y" per layer × head.
 */
export const postCompare: Handler = async (ctx, req, res) => {
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  onlyFields(body, ['model', 'modelB', 'text', 'textB', 'from', 'to', 'truncate']);
  const text = optionalString(body, 'text') ?? '';
  const textB = optionalString(body, 'textB') || text;
  const from = optionalString(body, 'from') ?? '',
    to = optionalString(body, 'to') ?? '';
  if (!text.trim()) throw new HttpError(400, 'give text A to compare');
  if ((from.trim() === '') !== (to.trim() === ''))
    throw new HttpError(400, 'the question needs both "from" (tokens X) and "to" (tokens Y)');
  checkLength(ctx, 'textB', textB);
  const truncate = optionalBoolean(body, 'truncate', false);
  const modelB = body.modelB ?? body.model;
  const [keyA, keyB] = await Promise.all([body.model, modelB].map((m) => modelKey(parseModelSpec(m), ctx.roots)));
  if (keyA === keyB && textB === text)
    throw new HttpError(400, 'A and B are the same input: give a second text, or a second model');
  const a = (await attentionFor(ctx, { model: body.model, text, truncate }, res)).attention;
  const b = (await attentionFor(ctx, { model: modelB, text: textB, truncate }, res)).attention;
  if (keyA !== keyB && text === textB && a.tokens.join('\u0000') !== b.tokens.join('\u0000'))
    throw new HttpError(
      400,
      `the two models do not share a tokenizer (the text is ${a.tokens.length} and ${b.tokens.length} tokens)`,
    );
  const question = from.trim() ? { from, to } : undefined;
  const result: ToolResult = { report: compareReport(a, b, question), data: encoded(ctx, { a, b }) };
  sendJson(res, 200, result);
};

/**
 * POST /api/heads: the head finder over `corpus` (one text per line; with `pair`, a tab splits a sentence
 * pair), with the user's `patterns` ("/from/ -> /to/"). Events: `progress` after each text, then `result`.
 * Texts the model refuses (too long without `truncate`) are skipped and counted, as the CLI does.
 */
export const postHeads: Handler = async (ctx, req, res) => {
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  onlyFields(body, ['model', 'corpus', 'pair', 'patterns', 'truncate']);
  const patternSpecs = body.patterns ?? [];
  if (!Array.isArray(patternSpecs) || !patternSpecs.every((p) => typeof p === 'string') || patternSpecs.length > 16)
    throw new HttpError(400, '"patterns" must be a list of at most 16 strings "/from/ -> /to/"');
  const patterns = patternSpecs.filter((p) => p.trim() !== '').map(parsePattern);
  const corpus = corpusTexts(
    corpusLines(optionalString(body, 'corpus') ?? ''),
    optionalBoolean(body, 'pair', false),
    'corpus',
  );
  if (corpus.length > MAX_CORPUS_TEXTS)
    throw new HttpError(413, `the corpus has ${corpus.length} texts; this server takes at most ${MAX_CORPUS_TEXTS}`);
  for (const t of corpus) checkLength(ctx, t.where, t.text);
  const truncate = optionalBoolean(body, 'truncate', false);
  const key = await modelKey(parseModelSpec(body.model), ctx.roots);
  // The model first: a load failure is an ordinary error answer.
  await withTimeout(ctx.cache.get(key), ctx.limits.requestTimeoutMs, 'loading the model');

  const events = eventStream(res);
  try {
    const run = (n: number) =>
      withTimeout(
        ctx.cache.run(key, async (m) => {
          if (events.gone) throw new HttpError(499, 'the client closed the request');
          return m.attention(corpus[n].text, { pair: corpus[n].pair, truncate });
        }),
        ctx.limits.requestTimeoutMs,
        `running ${corpus[n].where}`,
      );
    const scores = new CorpusScores();
    const scored: number[] = [];
    const skipped: HeadsReport['skipped'] = [];
    for (let n = 0; n < corpus.length && !events.gone; n++) {
      let s: HeadScores;
      try {
        s = headScores(await run(n), patterns);
      } catch (e) {
        if (!(e instanceof AttnvizError)) throw e;
        skipped.push({ where: corpus[n].where, reason: e.message });
        events.send('progress', { done: n + 1, total: corpus.length, skipped: skipped.length });
        continue;
      }
      scores.add(scored.length, s);
      scored.push(n);
      events.send('progress', { done: n + 1, total: corpus.length, skipped: skipped.length });
    }
    if (events.gone) return;
    if (!scored.length)
      throw new HttpError(
        400,
        `no text of ${corpus.length} could be scored (first: ${skipped[0].where}: ${skipped[0].reason})`,
      );
    const texts = scored.map((n) =>
      corpus[n].pair === null ? corpus[n].text : `${corpus[n].text}\t${corpus[n].pair}`,
    );
    const report = headsReport(scores.result(), key, texts, skipped);
    // As the CLI: the texts the report opens are run again, keeping the layers where each is some head's best.
    const attentions: Record<string, Attention> = {};
    for (const [text, layers] of bestTexts(report))
      attentions[`t${text}`] = keepLayers(await run(scored[text]), layers);
    const result: ToolResult = { report, data: encoded(ctx, attentions) };
    events.send('result', result);
  } catch (e) {
    events.fail(e);
  } finally {
    events.end();
  }
};

/** A number field within bounds, or `fallback` when absent. */
function numberField(
  body: Record<string, unknown>,
  name: string,
  ok: (n: number) => boolean,
  range: string,
  fallback?: number,
): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new HttpError(400, `"${name}" must be ${range}`);
  return v;
}

/**
 * POST /api/generate: continues `prompt` with a decoder. Events: `token` as each is chosen, then `result`:
 * the generation step by step (each token's probability and the top alternatives, the attention over prompt
 * and generated tokens, its `promptLength` set) and the seed.
 */
export const postGenerate: Handler = async (ctx, req, res) => {
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  onlyFields(body, ['model', 'prompt', 'maxNewTokens', 'temperature', 'topP', 'seed', 'alternatives']);
  const prompt = optionalString(body, 'prompt') ?? '';
  checkLength(ctx, 'prompt', prompt);
  const int = (n: number) => Number.isSafeInteger(n);
  const options = {
    maxNewTokens: numberField(
      body,
      'maxNewTokens',
      (n) => int(n) && n >= 1 && n <= MAX_NEW_TOKENS,
      `an integer from 1 to ${MAX_NEW_TOKENS}`,
      40,
    )!,
    temperature: numberField(body, 'temperature', (n) => n >= 0 && n <= 100, 'a number from 0 (greedy) to 100', 1),
    topP: numberField(body, 'topP', (n) => n > 0 && n <= 1, 'a number in (0, 1]', 0.9),
    seed: numberField(body, 'seed', (n) => int(n) && n >= 0 && n < 2 ** 32, 'an integer from 0 to 2³² − 1'),
    alternatives: numberField(body, 'alternatives', (n) => int(n) && n >= 1 && n <= 20, 'an integer from 1 to 20', 5),
  };
  const key = await modelKey(parseModelSpec(body.model), ctx.roots);
  const model = await withTimeout(ctx.cache.get(key), ctx.limits.requestTimeoutMs, 'loading the model');
  // Refused before the stream starts, as an ordinary error answer: an encoder, an encoder-decoder.
  if (!model.capabilities.generate) throw cannotGenerate(model);

  const events = eventStream(res);
  try {
    const g = await withTimeout(
      ctx.cache.run(key, (m) =>
        generateWith(m, prompt, {
          ...options,
          onToken: (t) => {
            if (events.gone) throw new HttpError(499, 'the client closed the request');
            events.send('token', t);
          },
        }),
      ),
      ctx.limits.requestTimeoutMs,
      'generating',
    );
    if (!g.attention) throw new HttpError(500, `${key} gave no attention for the generated text`);
    const report = stepsReport(g, key, prompt, options.temperature ?? 1);
    const result: ToolResult = { report, data: encoded(ctx, { a: g.attention }, true), seed: g.seed };
    events.send('result', result);
  } catch (e) {
    events.fail(e);
  } finally {
    events.end();
  }
};
