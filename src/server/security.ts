/**
 * Who may talk to the server and which files a request may name.
 *
 * - Host and Origin: a page on another site can make a browser send requests to 127.0.0.1 under its own name
 *   (DNS rebinding: evil.example resolves to 127.0.0.1). Every request must therefore name this server as
 *   its Host (127.0.0.1, localhost or [::1] with the port; the bound address when it is another), and a
 *   request carrying an Origin must come from one of those too.
 * - Model paths: a folder named in a request is accepted only inside a configured model root, after
 *   resolving symlinks (realpath), so neither `..` nor a symlink leads out.
 */
import { realpath } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { networkInterfaces } from 'node:os';
import { isAbsolute, resolve, sep } from 'node:path';
import { HttpError } from './http-error.js';

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

/** Whether `host` is a loopback address (binding elsewhere needs an explicit flag). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The Host header values (name:port) that mean this server. */
export function allowedHosts(bind: string, port: number): Set<string> {
  const names = new Set(LOOPBACK_NAMES);
  const bracket = (a: string) => (a.includes(':') ? `[${a}]` : a);
  if (bind === '0.0.0.0' || bind === '::') {
    for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) names.add(bracket(i.address));
  } else {
    names.add(bracket(bind));
  }
  const hosts = new Set<string>();
  for (const n of names) {
    hosts.add(`${n}:${port}`);
    if (port === 80) hosts.add(n);
  }
  return hosts;
}

/** Throws 403 unless Host (and Origin, when present) name this server. */
export function checkHostAndOrigin(req: IncomingMessage, allowed: Set<string>): void {
  const host = (req.headers.host ?? '').toLowerCase();
  if (!allowed.has(host)) {
    throw new HttpError(
      403,
      `Host "${host.slice(0, 100)}" is not this server: requests under another name are refused (DNS rebinding protection)`,
    );
  }
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let url: URL | null = null;
  try {
    url = new URL(origin);
  } catch {
    // 'null' (sandboxed frames, file:// pages) and junk land here
  }
  if (url?.protocol !== 'http:' || !allowed.has(url.host.toLowerCase())) {
    throw new HttpError(403, `Origin "${origin.slice(0, 100)}" is not this server: cross-site requests are refused`);
  }
}

/**
 * The real path of model folder `path` (absolute, or relative to one of `roots`, tried in order), if it lies
 * inside a root once symlinks are resolved; else 403 (outside) or 404 (missing).
 */
export async function resolveInRoots(path: string, roots: readonly string[]): Promise<string> {
  if (path.includes('\0')) throw new HttpError(400, 'model path contains a NUL byte');
  if (path.split(/[\\/]/).includes('..'))
    throw new HttpError(403, `model path "${path}" contains "..": only folders inside the model roots are served`);
  if (roots.length === 0)
    throw new HttpError(403, 'no model roots are configured (start the server with --models-dir <folder>)');
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => null)));
  const candidates = isAbsolute(path) ? [path] : roots.map((r) => resolve(r, path));
  let found = false;
  for (const candidate of candidates) {
    const real = await realpath(candidate).catch(() => null);
    if (real === null) continue;
    found = true;
    if (realRoots.some((r) => r !== null && (real === r || real.startsWith(r.endsWith(sep) ? r : r + sep))))
      return real;
  }
  if (found) throw new HttpError(403, `model path "${path}" is outside the model roots`);
  throw new HttpError(404, `no model folder "${path}" in the model roots`);
}
