/**
 * Load benchmark of the local server (prints figures; not a test). Starts `attnviz serve` as a child
 * process on a free loopback port, warms it up (sequential requests, then the same load for 10 s,
 * unmeasured), then runs autocannon: 50 concurrent connections for 30 s,
 * each request POST /api/attention for a different short text on the embedded model (a counter in every
 * text, so no request is answered from the server's small result cache). Reports requests/s, latency
 * percentiles, errors, timeouts and non-2xx answers, and the server's memory: RSS sampled every second
 * from /proc/<pid>/status, after warm-up, during the run and at the end, and its peak (VmHWM).
 *
 *   npm run build && npm run bench:server         # = node dist/bench/server.js
 *   options: --connections N (50)  --duration S (30)  --warmup N (20 sequential requests)
 *            --warmup-seconds S (10: the same load, unmeasured)  --json FILE
 *
 * Traffic goes to 127.0.0.1 only; the run is bounded by --duration and stops by itself.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { memoryOf, postJson, serverStatus, startServer } from './serve.js';

/** The part of autocannon's result read here (the package ships no types). */
interface Histogram {
  average: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  min: number;
  total: number;
}
interface CannonResult {
  requests: Histogram;
  latency: Histogram & { p2_5: number; p97_5: number };
  throughput: Histogram;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  duration: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<CannonResult>;

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '50' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '20' },
    'warmup-seconds': { type: 'string', default: '10' },
    json: { type: 'string' },
  },
});
const connections = Number(values.connections),
  duration = Number(values.duration),
  warmup = Number(values.warmup);
const warmupSeconds = Number(values['warmup-seconds']);

const SUBJECTS = [
  'The cat',
  'A dog',
  'My neighbour',
  'The old sailor',
  'Every student',
  'The small robot',
  'Her brother',
  'The committee',
];
const VERBS = ['watched', 'followed', 'ignored', 'painted', 'described', 'remembered', 'carried', 'questioned'];
const OBJECTS = [
  'the river',
  'a red kite',
  'the tired horse',
  'an empty room',
  'the night train',
  'a paper map',
  'the last letter',
  'the quiet garden',
];
let counter = 0;
/** A different short sentence every call (6–10 tokens). */
function nextText(): string {
  const n = counter++;
  return `${SUBJECTS[n % 8]} ${VERBS[(n >> 3) % 8]} ${OBJECTS[(n >> 6) % 8]} ${n}.`;
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;

async function main(): Promise<void> {
  const { url, pid, child } = await startServer([]);
  try {
    const post = async (text: string) => {
      const r = await postJson(url, 'api/attention', JSON.stringify({ text }));
      if (!r.ok) throw new Error(`warm-up request failed: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    };
    const started = performance.now();
    for (let i = 0; i < warmup; i++) await post(nextText());
    const single = (performance.now() - started) / warmup;
    const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
    const load = (seconds: number) =>
      autocannon({
        url: `${url}api/attention`,
        connections,
        duration: seconds,
        // Requests wait in the model's queue: 50 of them at a few hundred ms each is tens of seconds.
        timeout: 60,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        requests: [
          { setupRequest: (req: Record<string, unknown>) => ({ ...req, body: JSON.stringify({ text: nextText() }) }) },
        ],
      });
    // Warm-up under the same load (connections, queue, buffers), not measured.
    await load(warmupSeconds);
    // Requests cut off at the end of the warm-up are dropped by the server when their turn comes; wait for that.
    for (let pending = 1; pending > 0; ) {
      const status = await serverStatus<{ models: { pending: number }[] }>(url);
      pending = status.models.reduce((n, m) => n + m.pending, 0);
      if (pending) await new Promise((r) => setTimeout(r, 200));
    }
    const afterWarmup = memoryOf(pid);

    const samples: { t: number; rss: number }[] = [];
    const t0 = performance.now();
    const sampler = setInterval(
      () => samples.push({ t: (performance.now() - t0) / 1000, rss: memoryOf(pid).rss }),
      1000,
    );
    const result = await load(duration);
    clearInterval(sampler);
    const end = memoryOf(pid);
    const status = await serverStatus<{ memory: { heapUsed: number } }>(url);

    const during = samples.map((s) => s.rss);
    const report = {
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpu: os.cpus()[0]?.model,
        loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
        node: process.version,
      },
      connections,
      duration,
      singleRequestMs: Math.round(single),
      requestsPerSecond: { average: result.requests.average, min: result.requests.min, max: result.requests.max },
      total: result.requests.total,
      ok: result['2xx'],
      errors: result.errors,
      timeouts: result.timeouts,
      non2xx: result.non2xx,
      latencyMs: {
        p50: result.latency.p50,
        p90: result.latency.p90,
        p99: result.latency.p99,
        max: result.latency.max,
        mean: result.latency.mean,
      },
      memory: {
        rssAfterWarmup: afterWarmup.rss,
        rssPeakDuringRun: Math.max(...during),
        rssMinDuringRun: Math.min(...during),
        rssAtEnd: end.rss,
        peakRss: end.hwm,
        heapUsedAtEnd: status.memory.heapUsed,
        samples: samples.map((s) => [Number(s.t.toFixed(1)), Math.round(s.rss / 2 ** 20)]),
      },
    };
    if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
    const third = (i: number) =>
      during.slice(Math.floor((i * during.length) / 3), Math.floor(((i + 1) * during.length) / 3));
    const maxOf = (xs: number[]) => (xs.length ? mb(Math.max(...xs)) : '–');
    const loadCell =
      `${connections} connections × ${duration} s, POST /api/attention, ` +
      'a different 6–10-token text each, embedded model';
    const perSecond = `${result.requests.average.toFixed(1)} (${result.requests.min}–${result.requests.max})`;
    const { p50, p90, p99, max } = result.latency;
    const machine =
      `${report.machine.cpus} × ${report.machine.cpu}, ` +
      `load average ${report.machine.loadavg.join(' ')}, Node ${process.version}`;
    console.log(`| figure | value |
| --- | --- |
| load | ${loadCell} |
| one request alone (warm, sequential) | ${report.singleRequestMs} ms |
| requests/s (mean, min–max per second) | ${perSecond} |
| requests answered 200 / total | ${result['2xx']} / ${result.requests.total} |
| errors, timeouts, non-2xx | ${result.errors}, ${result.timeouts}, ${result.non2xx} |
| latency p50 / p90 / p99 / max | ${p50} / ${p90} / ${p99} / ${max} ms |
| server RSS after warm-up (20 sequential + ${warmupSeconds} s of the same load) | ${mb(afterWarmup.rss)} |
| server RSS, max in each third of the run | ${maxOf(third(0))} / ${maxOf(third(1))} / ${maxOf(third(2))} |
| server RSS at the end; peak RSS (VmHWM) | ${mb(end.rss)}; ${mb(end.hwm)} |
| machine | ${machine} |`);
  } finally {
    child.kill('SIGTERM');
  }
}

await main();
