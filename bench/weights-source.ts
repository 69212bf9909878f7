/**
 * How onnxruntime should get a checkpoint's weights, so that a file changed under a loaded model can never
 * bring the process down (issue 11: a truncated model.safetensors under a mapping is SIGBUS, exit 135). Compared
 * on a random BERT-base-shaped checkpoint (440 MB of f32, bench/checkpoints.ts), each way in a fresh process:
 * - map: onnxruntime maps the files (the old default; unsafe: truncation kills, an overwrite changes results);
 * - memory: the files are read and handed over as in-memory external data (LoadOptions.weights 'memory');
 * - copy: the files are copied to a private temporary folder, mapped from there and unlinked once the sessions
 *   exist (nobody else can open them then; LoadOptions.weights 'copy', the default);
 * - verify: map, plus a stat of every file before each run (what it costs; it cannot close the window between
 *   the check and the run).
 * Reports load time, the first run at 128 tokens, resident memory after load and after the run, the peak
 * (VmHWM), and whether the attention equals the mapped one.
 *
 *   npm run build && node --expose-gc dist/bench/weights-source.js [--dir DIR] [--json FILE]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel } from '../src/models/load-model.js';
import { BERT, writeCheckpoint } from './checkpoints.js';

const MODES = ['map', 'memory', 'copy', 'verify'] as const;
type Mode = (typeof MODES)[number];

interface Figures {
  mode: Mode;
  loadSeconds: number;
  /** CPU time of the load (user + system, all threads): less sensitive than wall time to a busy machine. */
  loadCpuSeconds: number;
  runSeconds: number;
  rssAfterLoadMB: number;
  rssAfterRunMB: number;
  peakMB: number;
  /** Microseconds per stat of every model file (verify only). */
  statMicros?: number;
  checksum: number;
}

const { values } = parseArgs({
  options: { dir: { type: 'string' }, json: { type: 'string' }, child: { type: 'string' } },
});

const MB = 2 ** 20;
const TEXT = 'The quick brown fox jumps over the lazy dog. '.repeat(13);

/** VmRSS and VmHWM of this process, in MB. */
function memory(): { rss: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

/** A full collection, and time for the freed array buffers to go back to the system. */
async function settle(): Promise<void> {
  globalThis.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 500));
  globalThis.gc?.();
}

async function child(mode: Mode, dir: string): Promise<Figures> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const m = await loadModel(dir, { weights: mode === 'verify' ? 'map' : mode, threads: 2 });
  await settle();
  const loadSeconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const loadCpuSeconds = (cpu.user + cpu.system) / 1e6;
  const afterLoad = memory();
  const files = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'].map((n) =>
    join(dir, n),
  );
  let statMicros: number | undefined;
  if (mode === 'verify') {
    const s0 = performance.now();
    for (let i = 0; i < 1000; i++) for (const f of files) statSync(f, { bigint: true });
    statMicros = ((performance.now() - s0) * 1000) / 1000;
  }
  const t1 = performance.now();
  const a = await m.attention(TEXT, { truncate: true });
  const runSeconds = (performance.now() - t1) / 1000;
  await settle();
  const afterRun = memory();
  let checksum = 0;
  for (let i = 0; i < a.attention.data.length; i += 97) checksum += a.attention.data[i] * (i % 13);
  await m.release();
  return {
    mode,
    loadSeconds,
    loadCpuSeconds,
    runSeconds,
    rssAfterLoadMB: afterLoad.rss,
    rssAfterRunMB: afterRun.rss,
    peakMB: afterRun.peak,
    ...(statMicros === undefined ? {} : { statMicros }),
    checksum,
  };
}

if (values.child) {
  const figures = await child(values.child as Mode, values.dir!);
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const dir = values.dir ?? join(os.tmpdir(), 'attnviz-bench-bert-base');
  if (!existsSync(join(dir, 'model.safetensors'))) {
    mkdirSync(dir, { recursive: true });
    console.log(`writing a random BERT-base checkpoint to ${dir}`);
    writeCheckpoint(BERT, dir);
  }
  const weights = statSync(join(dir, 'model.safetensors')).size / MB;
  const script = fileURLToPath(import.meta.url);
  const results: Figures[] = [];
  for (const mode of MODES) {
    const out = execFileSync(process.execPath, ['--expose-gc', script, '--child', mode, '--dir', dir], {
      encoding: 'utf8',
    });
    results.push(JSON.parse(out.trim().split('\n').pop()!) as Figures);
  }
  const base = results[0].checksum;
  console.log(
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; weights ${weights.toFixed(0)} MB (BERT-base shape, f32), run: 128 tokens`,
  );
  console.log(
    '| way    | load (s) | load CPU (s) | first run (s) | RSS after load | RSS after run | peak RSS | same attention |',
  );
  console.log(
    '| ------ | -------- | ------------ | ------------- | -------------- | ------------- | -------- | -------------- |',
  );
  for (const r of results)
    console.log(
      `| ${r.mode.padEnd(6)} | ${r.loadSeconds.toFixed(2).padStart(8)} | ` +
        `${r.loadCpuSeconds.toFixed(2).padStart(12)} | ${r.runSeconds.toFixed(3).padStart(13)} | ` +
        `${r.rssAfterLoadMB.toFixed(0).padStart(11)} MB | ${r.rssAfterRunMB.toFixed(0).padStart(10)} MB | ` +
        `${r.peakMB.toFixed(0).padStart(5)} MB | ${(r.checksum === base ? 'yes' : 'NO').padEnd(14)} |`,
    );
  const verify = results.find((r) => r.mode === 'verify');
  console.log(`verify: a stat of the model's 4 files costs ${verify?.statMicros?.toFixed(1)} µs per run`);
  if (values.json) writeFileSync(values.json, `${JSON.stringify(results, null, 1)}\n`);
}
