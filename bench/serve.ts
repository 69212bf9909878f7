/**
 * What the server benchmarks share (server.ts, soak.ts, app-model-view.ts): `attnviz serve` from dist/ as a
 * child process on a free loopback port (`--port 0`), its URL read from the line it prints when ready, its memory
 * read from /proc/<pid>/status, and requests to it.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export interface Server {
  /** The app's URL, ending in '/'. */
  url: string;
  pid: number;
  child: ChildProcessByStdio<null, Readable, Readable>;
}

/**
 * Starts `attnviz serve --port 0 ...args` and resolves once it prints its URL: this checkout's build, or `cli`
 * (another build's dist/src/cli/main.js). Its stderr is passed on to ours (with `quiet`, not) and its end kept
 * for the error if it exits before it is ready.
 */
export async function startServer(
  args: readonly string[],
  options: { quiet?: boolean; cli?: string } = {},
): Promise<Server> {
  const cli = options.cli ?? fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    if (!options.quiet) process.stderr.write(s);
    stderr = (stderr + s).slice(-4000);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /serving the app at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) =>
      reject(new Error(`${cli}: the server exited (${code}) before it was ready${stderr ? `: ${stderr}` : ''}`)),
    );
  });
  return { url, pid: child.pid!, child };
}

/** POSTs `body` (JSON text) to `path` (e.g. 'api/attention', below the server's URL). */
export function postJson(url: string, path: string, body: string, signal?: AbortSignal): Promise<Response> {
  return fetch(new URL(path, url), { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal });
}

/** GET /api/status, as the type the caller reads of it. */
export async function serverStatus<T>(url: string): Promise<T> {
  return (await (await fetch(new URL('api/status', url))).json()) as T;
}

/** A process's resident memory and its peak (VmRSS, VmHWM), in bytes. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}
