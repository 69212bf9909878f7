/**
 * Who may talk to the server and which files a request may name.
 *
 * - Host and Origin: a page on another site can make a browser send requests to 127.0.0.1 under its own name
 *   (DNS rebinding: evil.example resolves to 127.0.0.1). Every request must therefore name this server as
 *   its Host (127.0.0.1, localhost or [::1] with the port; the bound address when it is another), and a
 *   request carrying an Origin must come from one of those too.
 * - Model paths: a folder named in a request is accepted only inside a configured model root, after
 *   resolving symlinks (realpath), so neither `..` nor a symlink leads out; and so must every file in it
 *   (modelFiles), checked before each load and again on every request to a loaded model.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { networkInterfaces } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
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
      `Host "${host.slice(0, 100)}" is not this server: requests under another name are refused ` +
        `(DNS rebinding protection)`,
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

/** Whether real path `real` is one of `realRoots` or inside one. */
function insideRoots(real: string, realRoots: readonly (string | null)[]): boolean {
  return realRoots.some((r) => r !== null && (real === r || real.startsWith(r.endsWith(sep) ? r : r + sep)));
}

/**
 * The real path of model folder `path` (absolute, or relative to one of `roots`, tried in order), if it lies
 * inside a root once symlinks are resolved; else 404. A path outside the roots gets the same answer as one
 * that does not exist (same status, same message), so requests cannot probe which files exist on the machine.
 */
export async function resolveInRoots(path: string, roots: readonly string[]): Promise<string> {
  if (path.includes('\0')) throw new HttpError(400, 'model path contains a NUL byte');
  if (path.split(/[\\/]/).includes('..'))
    throw new HttpError(
      403,
      `model path "${path.slice(0, 200)}" contains "..": only folders inside the model roots are served`,
    );
  if (roots.length === 0)
    throw new HttpError(403, 'no model roots are configured (start the server with --models-dir <folder>)');
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => null)));
  const candidates = isAbsolute(path) ? [path] : roots.map((r) => resolve(r, path));
  for (const candidate of candidates) {
    const real = await realpath(candidate).catch(() => null);
    if (real !== null && insideRoots(real, realRoots)) return real;
  }
  throw new HttpError(404, `no model "${path.slice(0, 200)}" in the model roots`);
}

/** Bounds on the walk over a model folder's files (a model folder holds tens of files, a few levels deep). */
const WALK_DEPTH = 4;
const WALK_FILES = 10_000;

/**
 * The state of the files of model folder (or file) `real`: each file's name, real path, device, inode, size,
 * modification and change times, one line each. Cheap enough for every request (a stat per file), and any
 * truncation, overwrite (even of the same size), rename over it or swap for a symlink changes it. With `roots`,
 * every file must also resolve, symlinks followed, inside them: a file that links elsewhere is refused (403,
 * naming only the file inside the folder) before anything reads it, so no error can echo its content; after a
 * load, such a swap makes the next request fail the same way.
 */
export async function modelFiles(real: string, roots: readonly string[] | null): Promise<string> {
  const realRoots = roots && (await Promise.all(roots.map((r) => realpath(r).catch(() => null))));
  const lines: string[] = [];
  let seen = 0;
  const add = async (path: string, base: string): Promise<string | null> => {
    // A dangling link resolves nowhere: nothing can be read through it, so it is left to the loader.
    const target = await realpath(path).catch(() => null);
    if (target === null) return null;
    if (realRoots && !insideRoots(target, realRoots))
      throw new HttpError(
        403,
        `model file ${relative(base, path).slice(0, 200)} links outside the model roots: it is not served`,
      );
    const s = await stat(target, { bigint: true });
    if (s.isFile()) lines.push(`${path}\0${target}\0${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`);
    return s.isDirectory() ? target : null;
  };
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir).catch(() => null);
    if (entries === null) return;
    for (const name of entries.sort()) {
      if (++seen > WALK_FILES)
        throw new HttpError(403, `model folder ${basename(real)} holds more than ${WALK_FILES} files`);
      const path = join(dir, name);
      if ((await add(path, real)) !== null && depth < WALK_DEPTH) await walk(path, depth + 1);
    }
  };
  // A .gguf file holds everything; an .onnx file may name external weights beside it.
  const top = await stat(real).catch(() => {
    throw new HttpError(404, `model ${basename(real).slice(0, 200)} is no longer in the model roots`);
  });
  if (top.isDirectory()) await walk(real, 0);
  else if (real.toLowerCase().endsWith('.gguf')) await add(real, dirname(real));
  else await walk(dirname(real), 0);
  return lines.join('\n');
}
