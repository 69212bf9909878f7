/**
 * Start-up benchmark (prints figures; not a test): `attnviz extract` on bert-tiny end to end against an empty
 * Node (`node -e ''`) plus the run itself, i.e. the same work (loadModel, the layer stream into an attention
 * file, release) timed inside a process that has already imported the modules. Target (issue 13):
 * CLI ≤ 2 × empty Node + the run itself. Rounds interleave the three, so they see the same machine; wall
 * time and CPU time (user + system, this process's children) are both reported, CPU time being the steadier
 * on a shared machine. `--baseline DIR` adds another built checkout's CLI (e.g. main, before a change) to
 * every round: before and after side by side. The CLI is the bundle `npm run build` makes (vite.cli.config.ts);
 * the script imports the library's own modules (tsc's), as a program using attnviz's API would.
 *
 *   node dist/bench/startup.js [--runs N] [--baseline ../main]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const REPO = resolve(dirname(SELF), '..', '..');
const CLI = join(REPO, 'dist', 'src', 'cli', 'main.js');
const MODEL = resolve(REPO, '..', 'shared', 'golden', 'models', 'bert-tiny');
const TEXT = 'The cat sat on the mat.';

/** CPU seconds (user + system) of this process's waited-for children, from /proc/self/stat. */
function childCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  return (fields[13] + fields[14]) / 100;
}

/** Wall and CPU milliseconds of one child run, and what it printed. */
function measure(args: string[]): { wall: number; cpu: number; stdout: string } {
  const c = childCpu();
  const t = performance.now();
  const stdout = execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return { wall: performance.now() - t, cpu: (childCpu() - c) * 1000, stdout };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function inProcess(out: string): Promise<void> {
  const { Model } = await import('../src/models/checkpoint-model.js');
  const { writeAttentionStream } = await import('../src/core/files.js');
  const t = performance.now();
  const m = await Model.load(MODEL);
  await writeAttentionStream(out, m.stream(TEXT));
  await m.release();
  console.log(performance.now() - t);
}

function main(): void {
  if (!existsSync(MODEL) || !existsSync(CLI)) {
    console.log(`bench/startup: skipped: needs ${MODEL} and a build (${CLI})`);
    return;
  }
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : 7;
  const b = process.argv.indexOf('--baseline');
  const baseline = b > 0 ? join(resolve(process.argv[b + 1]), 'dist', 'src', 'cli', 'main.js') : null;
  if (baseline && !existsSync(baseline)) throw new Error(`--baseline: no build at ${baseline}`);
  const tmp = mkdtempSync(join(os.tmpdir(), 'attnviz-startup-'));
  const out = join(tmp, 'cat.safetensors');
  const rows = {
    empty: [] as number[][],
    cli: [] as number[][],
    baseline: [] as number[][],
    inproc: [] as number[][],
    run: [] as number[],
  };
  const extract = (cli: string) => [cli, 'extract', '--model', MODEL, '--text', TEXT, '--out', out];
  try {
    console.log(
      `attnviz start-up benchmark: ${os.cpus()[0]?.model}, ${os.cpus().length} cores, node ${process.version}`,
    );
    console.log(
      `load average at start: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(', ')}`,
    );
    for (let r = 0; r <= runs; r++) {
      const empty = measure(['-e', '']);
      const cli = measure(extract(CLI));
      const before = baseline ? measure(extract(baseline)) : null;
      const inproc = measure([SELF, '--in-process', out]);
      if (r === 0) continue; // warm-up: page cache, compile cache
      rows.empty.push([empty.wall, empty.cpu]);
      rows.cli.push([cli.wall, cli.cpu]);
      if (before) rows.baseline.push([before.wall, before.cpu]);
      rows.inproc.push([inproc.wall, inproc.cpu]);
      rows.run.push(Number(inproc.stdout.trim()));
    }
    const m = (xs: number[][], k: 0 | 1) => median(xs.map((x) => x[k]));
    const empty = m(rows.empty, 0),
      cli = m(rows.cli, 0),
      run = median(rows.run);
    console.log(`\nmedians of ${runs} interleaved rounds, ms (wall / CPU user+system):`);
    console.log(`  node -e ''                         ${empty.toFixed(0)} / ${m(rows.empty, 1).toFixed(0)}`);
    console.log(`  attnviz extract (bert-tiny), CLI   ${cli.toFixed(0)} / ${m(rows.cli, 1).toFixed(0)}`);
    if (baseline)
      console.log(
        `  … the same, baseline's CLI         ${m(rows.baseline, 0).toFixed(0)} / ${m(rows.baseline, 1).toFixed(0)}` +
          `   (${baseline})`,
      );
    console.log(
      `  the same in a script, whole        ${m(rows.inproc, 0).toFixed(0)} / ${m(rows.inproc, 1).toFixed(0)}`,
    );
    console.log(`  … the run itself (after imports)   ${run.toFixed(0)}`);
    const ok = cli <= 2 * empty + run;
    console.log(
      `target: CLI ≤ 2 × node -e '' + the run: ${cli.toFixed(0)} ≤ ` +
        `${(2 * empty + run).toFixed(0)} ms — ${ok ? 'met' : 'NOT met'}`,
    );
    console.log(
      `load average at the end: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(', ')}`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--in-process') await inProcess(process.argv[3]);
else main();
