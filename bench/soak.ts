/**
 * Soak benchmark of the local server (issue 11 item 3: resident memory crept from 240 to 691 MB over a mixed
 * session with nothing pending). Starts `attnviz serve` as a child process on a free loopback port with the
 * real tiny models of ../shared as model roots, and sends mixed requests from a few concurrent clients for
 * `--minutes` (30 by default): attention on several models (the embedded TF.js model, BERT, GPT-2, Llama, a
 * GGUF file) at several lengths, whole, layer by layer and as the pooled overview; token counts; HTML and
 * attention-file exports; requests that must fail (unknown model, too many tokens, malformed body); model
 * switches (consecutive requests name different models); and requests the client aborts mid-way.
 * Bounded in time and in count (`--max-requests`), traffic to 127.0.0.1 only.
 *
 * Reports requests, unexpected answers, latency p50/p99, the server's JS heap and external memory after warm-up
 * and at the end (GET /api/status), and its RSS (from /proc/<pid>/status): at
 * the start, after warm-up (the first fifth of the run, at most 3 minutes: every model loaded, every kind of
 * request answered), the largest after it, and at the end; target: the end within 100 MB of the warm-up.
 *
 *   npm run build && node dist/bench/soak.js [--minutes N] [--clients N] [--max-requests N] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mulberry32, quantile } from './harness.js';
import { memoryOf, postJson, serverStatus, startServer } from './serve.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    clients: { type: 'string', default: '4' },
    'max-requests': { type: 'string', default: '200000' },
    json: { type: 'string' },
  },
});
const minutes = Number(values.minutes);
const clients = Number(values.clients);
const maxRequests = Number(values['max-requests']);

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const SHARED = resolve(REPO, '..', 'shared');
const ROOTS = [join(SHARED, 'golden', 'models'), join(SHARED, 'models')];
const MODELS = [
  'embedded',
  'path:bert-tiny',
  'path:gpt2-tiny',
  'path:llama-tiny-mha',
  'path:tinystories-656k',
  'path:stories260K/stories260K.gguf',
];
const WORDS = 'the cat sat on a mat while lily and tom went to the park because she was happy and he was not'.split(
  ' ',
);
const MB = 2 ** 20;

interface Request {
  kind: string;
  path: string;
  body: string;
  /** Statuses that count as the right answer. */
  ok: number[];
  /** Abort after this many ms (the client hangs up). */
  abortMs?: number;
}

function nextRequest(rand: () => number, n: number): Request {
  const pick = <T>(a: readonly T[]) => a[Math.floor(rand() * a.length)];
  const model = pick(MODELS);
  // A counter in the text, so results do not all come from the server's small result cache.
  const words = Math.floor(4 + rand() ** 2 * 120);
  const text = `${n} ${Array.from({ length: words }, () => pick(WORDS)).join(' ')}.`;
  const json = (o: unknown) => JSON.stringify(o);
  const r = rand();
  if (r < 0.45) {
    const shape = pick([{}, { stream: 'layers' }, { detail: 'overview' }, { queryKey: false }]);
    return {
      kind: 'attention',
      path: '/api/attention',
      body: json({ model, text, truncate: true, ...shape }),
      ok: [200],
    };
  }
  if (r < 0.55) return { kind: 'tokens', path: '/api/tokens', body: json({ model, text }), ok: [200] };
  if (r < 0.67) {
    const format = pick(['html', 'attention']);
    const view = pick(['head', 'model', 'neuron']);
    return {
      kind: `export`,
      path: '/api/export',
      body: json({ model, text, format, view, truncate: true }),
      ok: [200],
    };
  }
  if (r < 0.8) {
    const bad = pick([
      { body: json({ model: 'path:no-such-model', text }), ok: [404] },
      { body: json({ model: 'path:gpt2-tiny', text: 'word '.repeat(2000) }), ok: [400] },
      { body: '{"model": "embedded", "text": ', ok: [400] },
      { body: json({ model, text, unknown: 1 }), ok: [400] },
    ]);
    return { kind: 'error', path: '/api/attention', ...bad };
  }
  if (r < 0.9) {
    return {
      kind: 'aborted',
      path: '/api/attention',
      body: json({ model, text: `${text} `.repeat(4), truncate: true }),
      ok: [],
      abortMs: 1 + Math.floor(rand() * 30),
    };
  }
  return { kind: 'load', path: '/api/models/load', body: json({ model }), ok: [200] };
}

const rssOf = (pid: number) => memoryOf(pid).rss;

async function main(): Promise<void> {
  // Quiet: client hang-ups are logged on purpose, one line each.
  const { url, pid, child } = await startServer(
    ROOTS.flatMap((r) => ['--models-dir', r]),
    { quiet: true },
  );
  const start = rssOf(pid);
  const t0 = performance.now();
  const end = t0 + minutes * 60_000;
  const warmupEnd = t0 + Math.min(minutes * 12_000, 180_000);
  const samples: [number, number][] = [];
  let afterWarmup = 0;
  /** The server's own view (GET /api/status): JS heap, external and array-buffer memory tell JS from native. */
  const heapOf = async () => {
    const { memory } = await serverStatus<{ memory: Record<string, number> }>(url);
    return Object.fromEntries(Object.entries(memory).map(([k, v]) => [k, Math.round(v / MB)]));
  };
  let heapAfterWarmup: Promise<Record<string, number>> | null = null;
  const sampler = setInterval(() => {
    const rss = rssOf(pid);
    samples.push([Math.round((performance.now() - t0) / 1000), Math.round(rss / MB)]);
    if (!afterWarmup && performance.now() >= warmupEnd) {
      afterWarmup = rss;
      heapAfterWarmup = heapOf();
    }
  }, 1000);

  const latencies: number[] = [];
  const counts: Record<string, number> = {};
  const unexpected: string[] = [];
  let sent = 0;
  const client = async (seed: number) => {
    const rand = mulberry32(seed);
    while (performance.now() < end && sent < maxRequests) {
      const req = nextRequest(rand, sent++);
      counts[req.kind] = (counts[req.kind] ?? 0) + 1;
      const abort = new AbortController();
      const timer = req.abortMs === undefined ? null : setTimeout(() => abort.abort(), req.abortMs);
      const t = performance.now();
      try {
        const r = await postJson(url, req.path, req.body, abort.signal);
        await r.arrayBuffer();
        if (!req.ok.includes(r.status) && req.abortMs === undefined)
          unexpected.push(`${req.kind} ${r.status} ${req.body.slice(0, 80)}`);
      } catch (e) {
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        if (req.abortMs === undefined)
          unexpected.push(`${req.kind}: ${(e as Error).message} (${cause?.code ?? cause?.message ?? 'no cause'})`);
      } finally {
        if (timer) clearTimeout(timer);
      }
      if (req.abortMs === undefined) latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i + 1)));
  // Nothing pending: the end figure is the server at rest.
  await new Promise((r) => setTimeout(r, 2000));
  clearInterval(sampler);
  const endRss = rssOf(pid);
  const heap = { afterWarmup: await heapAfterWarmup, end: await heapOf() };
  const alive = child.exitCode === null;
  child.kill('SIGTERM');
  const seconds = (performance.now() - t0) / 1000;
  afterWarmup ||= endRss;
  const afterWarmupSamples = samples.filter(([t]) => t * 1000 >= warmupEnd - t0).map(([, r]) => r);
  const result = {
    minutes: seconds / 60,
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model}`,
    loadAverage: os.loadavg(),
    requests: sent,
    byKind: counts,
    unexpected: unexpected.length,
    unexpectedExamples: unexpected.slice(0, 5),
    serverAlive: alive,
    p50ms: quantile(latencies, 0.5),
    p99ms: quantile(latencies, 0.99),
    rssStartMB: start / MB,
    rssAfterWarmupMB: afterWarmup / MB,
    rssMaxAfterWarmupMB: Math.max(...afterWarmupSamples, endRss / MB),
    rssEndMB: endRss / MB,
    targetMet: endRss - afterWarmup <= 100 * MB,
    heapMB: heap,
    samples,
  };
  console.log(
    `machine: ${result.machine}, load average ${result.loadAverage.map((l) => l.toFixed(2)).join(' ')}\n` +
      `${result.minutes.toFixed(1)} min, ${clients} clients: ${sent} requests ` +
      `(${Object.entries(counts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}), ${unexpected.length} unexpected answers, server ${alive ? 'alive' : 'DEAD'}\n` +
      `latency p50 ${result.p50ms.toFixed(0)} ms, p99 ${result.p99ms.toFixed(0)} ms (aborted requests left out)\n` +
      `RSS start ${result.rssStartMB.toFixed(0)} MB, after warm-up ${result.rssAfterWarmupMB.toFixed(0)} MB, ` +
      `max after warm-up ${result.rssMaxAfterWarmupMB.toFixed(0)} MB, end ${result.rssEndMB.toFixed(0)} MB: ` +
      `end − warm-up ${((endRss - afterWarmup) / MB).toFixed(0)} MB (target ≤ 100 MB: ` +
      `${result.targetMet ? 'met' : 'NOT met'})`,
  );
  console.log(`server memory (MB, process.memoryUsage): after warm-up ${JSON.stringify(heap.afterWarmup)}`);
  console.log(`                                         end ${JSON.stringify(heap.end)}`);
  for (const u of result.unexpectedExamples) console.log(`  unexpected: ${u}`);
  if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 1)}\n`);
}

await main();
