/**
 * Head finder throughput (prints figures; not a test): texts per second through model.attention() and
 * headScores() for a random BERT-base checkpoint (bench/checkpoints.ts) on N texts of 32–128 tokens (uniform,
 * seeded), run four ways in one process, one after the other on the same texts:
 *
 * - sequential:        one text per call, awaited in turn, onnxruntime's default threads (what `attnviz heads` does)
 * - sequential, 1 thread
 * - two in flight:     one session, two calls outstanding at a time
 * - pool:              one session per core, each with one thread, a call outstanding on each
 *
 * Batching several texts into one run (padding masks) is not among them: the graphs take one sequence
 * (`input_ids [T]`), so it would need a batch dimension in every family's graph.
 *
 *   node dist/bench/heads.js [--texts N] [--quick]     (--quick: 100 texts)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { headScores } from '../src/analysis/head-metrics.js';
import { Model } from '../src/models/checkpoint-model.js';
import { BERT, SHARED_MODELS, writeCheckpoint } from './checkpoints.js';
import { exactText } from './texts.js';

interface Figure {
  name: string;
  seconds: number;
  textsPerSecond: number;
  load: number[];
}

/** Runs every text through `models` with `inFlight` calls outstanding per model; scores each result. */
async function throughput(models: Model[], texts: string[], inFlight: number): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const worker = async (m: Model) => {
    while (next < texts.length) {
      const text = texts[next++];
      headScores(await m.attention(text));
    }
  };
  await Promise.all(models.flatMap((m) => Array.from({ length: inFlight }, () => worker(m))));
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--texts');
  const N = at >= 0 ? Number(argv[at + 1]) : argv.includes('--quick') ? 100 : 1000;
  if (!Number.isSafeInteger(N) || N <= 0) throw new Error(`--texts: not a count: ${argv[at + 1]}`);
  if (!existsSync(join(SHARED_MODELS, BERT.tokenizerFrom, 'tokenizer.json'))) {
    console.log(`bench/heads: skipped: the tokenizer comes from ${SHARED_MODELS}/${BERT.tokenizerFrom}, absent.`);
    return;
  }
  const cores = os.availableParallelism();
  const dir = await mkdtemp(join(os.tmpdir(), 'attnviz-bench-heads-'));
  try {
    const gen = writeCheckpoint(BERT, dir);
    console.log(`BERT-base checkpoint: ${(gen.bytes / 1e6).toFixed(0)} MB in ${gen.seconds.toFixed(1)} s`);
    const base = await Model.load(dir);
    // Lengths uniform in [32, 128], from a fixed linear congruential sequence so runs compare.
    let seed = 12345;
    const lengths = Array.from({ length: N }, () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return 32 + (seed % 97);
    });
    const byLength = new Map<number, string>();
    const texts = lengths.map((T) => {
      if (!byLength.has(T))
        byLength.set(
          T,
          exactText((s) => base.tokenizer.encode(s).ids.length, T),
        );
      return byLength.get(T)!;
    });
    const meanT = lengths.reduce((a, b) => a + b) / N;
    await throughput([base], texts.slice(0, 5), 1); // warm-up

    const figures: Figure[] = [];
    const record = async (name: string, models: Model[], inFlight: number) => {
      const seconds = await throughput(models, texts, inFlight);
      figures.push({ name, seconds, textsPerSecond: N / seconds, load: os.loadavg() });
      console.log(`${name}: ${(N / seconds).toFixed(2)} texts/s (${seconds.toFixed(1)} s)`);
    };
    await record('sequential (one text per call)', [base], 1);
    await record('two in flight, one session', [base], 2);
    await base.release();
    const single = await Model.load(dir, { threads: 1 });
    await throughput([single], texts.slice(0, 5), 1);
    await record('sequential, 1 thread', [single], 1);
    const pool = [
      single,
      ...(await Promise.all(Array.from({ length: cores - 1 }, () => Model.load(dir, { threads: 1 })))),
    ];
    for (const m of pool.slice(1)) await throughput([m], texts.slice(0, 2), 1);
    await record(`pool of ${cores} sessions × 1 thread`, pool, 1);
    await Promise.all(pool.map((m) => m.release()));

    // Scoring alone, on one attention of the mean length, to show its share of the time.
    const m = await Model.load(dir);
    const sample = await m.attention(exactText((s) => m.tokenizer.encode(s).ids.length, Math.round(meanT)));
    await m.release();
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) headScores(sample);
    const scoreMs = (performance.now() - t0) / 20;

    const first = figures[0].textsPerSecond;
    console.log(
      `\n${N} texts of 32–128 tokens (mean ${meanT.toFixed(1)}), BERT-base shapes (12 × 12 heads), ${cores} cores,`,
    );
    console.log(`${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}\n`);
    console.log('| strategy | texts/s | vs one per call | load average (1, 5, 15 min) after |');
    console.log('|---|---:|---:|---|');
    for (const f of figures)
      console.log(
        `| ${f.name} | ${f.textsPerSecond.toFixed(2)} | ${(f.textsPerSecond / first).toFixed(2)}× | ` +
          `${f.load.map((x) => x.toFixed(2)).join(', ')} |`,
      );
    console.log(`\nheadScores alone: ${scoreMs.toFixed(1)} ms per text of ${Math.round(meanT)} tokens.`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
