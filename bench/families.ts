/**
 * Second-wave families benchmark (prints figures; not a test): for each family added in issue 12, a random
 * checkpoint of one mid size (hidden 512, 8 heads, 6 layers) in the family's own Hugging Face layout, then at
 * exactly 128 tokens the extraction (`model.attention`, fresh result) against the plain forward pass of the same
 * weights (`loadModel(dir, { extract: false })` then `forward`) and their ratio (target: ≤ 1.3×).
 *
 *   node --expose-gc dist/bench/families.js [--runs N] [--family NAME] [--threads N]
 *
 * A call takes 30–60 ms here, where a pause of the machine moves one call by as much as the difference sought, so
 * the two run as pairs: each round one extraction and one plain pass, which of them first alternating, each after
 * a garbage collection outside the timed region (with --expose-gc; neither pays for the other's garbage). The
 * target is judged on the median over rounds of each pair's ratio, which a slow minute shifts less than the
 * ratio of the medians (printed beside it). Default 25 rounds after 3 warm-up ones.
 *
 * Beside wall time it gives the process's CPU time per call (user + system, every onnxruntime thread), which
 * other processes on a loaded machine disturb less; with `--threads 1` (default: every core) it is the work
 * itself, without threads spinning while they wait. And it counts the full collections V8 ran inside the timed
 * calls (not the benchmark's own): a fresh result's bytes count against V8's heap limit, and a collection during
 * the run takes the cores onnxruntime's threads run on (DeBERTa-v2 at 1.46× before its results were made after
 * the run, ort-direct.ts lentArray: one in nearly every call then, none now; bench/RESULTS.md).
 *
 * The checkpoints are written by family-checkpoint.ts (bert-tiny's tokenizer for encoders, llama-tiny-mha's for
 * decoders).
 */
import { rmSync } from 'node:fs';
import os from 'node:os';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { Model } from '../src/models/checkpoint-model.js';
import { writeFamilyCheckpoint } from './family-checkpoint.js';
import { median } from './harness.js';
import { exactText } from './texts.js';

const D = 512,
  H = 8,
  L = 6,
  FF = 1536;

const ENCODER = {
  vocab_size: 30522,
  hidden_size: D,
  num_attention_heads: H,
  num_hidden_layers: L,
  intermediate_size: FF,
};
const DECODER = { ...ENCODER, vocab_size: 512, num_key_value_heads: 4, max_position_embeddings: 2048 };

/** Configs by model_type; each family's defaults fill in the rest. */
const CONFIGS: Record<string, Record<string, unknown>> = {
  'xlm-roberta': { ...ENCODER, max_position_embeddings: 514, type_vocab_size: 1 },
  mpnet: { ...ENCODER, max_position_embeddings: 514 },
  'deberta-v2': {
    ...ENCODER,
    relative_attention: true,
    position_buckets: 256,
    pos_att_type: 'p2c|c2p',
    share_att_key: true,
    norm_rel_ebd: 'layer_norm',
    position_biased_input: false,
  },
  modernbert: { ...ENCODER, local_attention: 64 },
  qwen3: { ...DECODER, head_dim: 64 },
  gemma2: { ...DECODER, head_dim: 64, query_pre_attn_scalar: 64, sliding_window: 64 },
  gemma3_text: { ...DECODER, head_dim: 64, query_pre_attn_scalar: 64, sliding_window: 64 },
  phi3: DECODER,
  olmo2: DECODER,
  bloom: { vocab_size: 512, hidden_size: D, n_head: H, n_layer: L },
  falcon: { vocab_size: 512, hidden_size: D, num_attention_heads: H, num_hidden_layers: L },
  gptj: { vocab_size: 512, n_embd: D, n_head: H, n_layer: L, rotary_dim: 32 },
};
const ENCODERS = new Set(['xlm-roberta', 'mpnet', 'deberta-v2', 'modernbert']);

function writeCheckpoint(modelType: string): string {
  return writeFamilyCheckpoint(
    { model_type: modelType, ...CONFIGS[modelType] },
    ENCODERS.has(modelType) ? 'bert-tiny' : 'llama-tiny-mha',
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1]) || 25;
  const only = args.includes('--family') ? args[args.indexOf('--family') + 1] : null;
  const threads = args.includes('--threads') ? Number(args[args.indexOf('--threads') + 1]) : undefined;
  const gc = (globalThis as { gc?: () => void }).gc;
  console.log(
    `families benchmark: hidden ${D}, ${H} heads, ${L} layers, 128 tokens, ${runs} paired rounds (median), ` +
      `${threads ?? os.availableParallelism()} threads` +
      (gc ? '' : ' (no --expose-gc: collections fall inside the timings)'),
  );
  console.log(
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    '| family | extracts on | extraction (ms) | plain forward (ms) | ratio (paired) | ratio of medians | ≤ 1.3× | ' +
      'CPU ms: extraction, plain, ratio (paired) | full GCs in the calls: extraction, plain |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  // When each full collection started (performance.now() time), to count those inside the timed calls.
  const fullGCs: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)
        fullGCs.push(e.startTime);
  });
  observer.observe({ entryTypes: ['gc'] });
  for (const modelType of Object.keys(CONFIGS)) {
    if (only && only !== modelType) continue;
    const dir = writeCheckpoint(modelType);
    try {
      const [extract, plain] = [await Model.load(dir, { threads }), await Model.load(dir, { extract: false, threads })];
      const text = exactText((t) => extract.tokenizer.encode(t).ids.length, 128);
      // Wall and CPU ms per call, extraction and plain forward interleaved.
      const a: number[] = [],
        f: number[] = [],
        ca: number[] = [],
        cf: number[] = [];
      // The [start, end] of each timed call, extraction's and the plain pass's.
      const spans: [number, number][][] = [[], []];
      const timed = async (call: () => Promise<unknown>, wall: number[], cpu: number[], keep: boolean) => {
        gc?.();
        const [t, c] = [performance.now(), process.cpuUsage()];
        await call();
        const { user, system } = process.cpuUsage(c);
        const end = performance.now();
        if (keep) {
          wall.push(end - t);
          cpu.push((user + system) / 1000);
          spans[wall === a ? 0 : 1].push([t, end]);
        }
      };
      for (let i = -3; i < runs; i++) {
        const pair = [
          () => timed(() => extract.attention(text), a, ca, i >= 0),
          () => timed(() => plain.forward(text), f, cf, i >= 0),
        ];
        for (const call of i % 2 === 0 ? pair : pair.reverse()) await call();
      }
      // The observer hears of collections in a later task.
      await new Promise((r) => setTimeout(r, 10));
      const inCalls = (s: [number, number][]) => fullGCs.filter((g) => s.some(([t, end]) => g >= t && g <= end)).length;
      const paired = (x: number[], y: number[]) => median(x.map((v, i) => v / y[i]));
      const ratio = paired(a, f);
      // The kind the model chose for this input (LoadOptions.staged); score-bias families (MPNet, DeBERTa, BLOOM)
      // run whole, in one run of one session.
      const kind = extract.sessionKind === 'staged' ? 'a session per layer' : extract.streams ? 'one session' : 'whole';
      console.log(
        `| ${modelType} | ${kind} | ${median(a).toFixed(1)} | ${median(f).toFixed(1)} | ` +
          `${ratio.toFixed(2)} | ${(median(a) / median(f)).toFixed(2)} | ${ratio <= 1.3 ? 'met' : 'not met'} | ` +
          `${median(ca).toFixed(0)}, ${median(cf).toFixed(0)}, ${paired(ca, cf).toFixed(2)} | ` +
          `${inCalls(spans[0])}, ${inCalls(spans[1])} |`,
      );
      await Promise.all([extract.release(), plain.release()]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  observer.disconnect();
  console.log(
    `load average at the end: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}

await main();
