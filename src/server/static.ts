/**
 * The app's files (dist/app, built by vite.app.config.ts), served from a list made at startup: a request
 * names one of those files or gets 404, so no path from a URL ever reaches the file system.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

/** Styles come from the views' own <style> elements, hence 'unsafe-inline' for styles (never for scripts). */
export const APP_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export class StaticFiles {
  private constructor(private readonly files: Map<string, string>) {}

  /** Lists every file under `dir` ('/index.html' → path); an unbuilt app gives an empty list. */
  static async open(dir: string): Promise<StaticFiles> {
    const files = new Map<string, string>();
    if (existsSync(dir)) {
      for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile()) continue;
        const path = join(entry.parentPath, entry.name);
        files.set(`/${relative(dir, path).split(sep).join('/')}`, path);
      }
    }
    return new StaticFiles(files);
  }

  get built(): boolean {
    return this.files.has('/index.html');
  }

  has(urlPath: string): boolean {
    return this.files.has(urlPath === '/' ? '/index.html' : urlPath);
  }

  async send(res: ServerResponse, urlPath: string, head: boolean): Promise<void> {
    const path = this.files.get(urlPath === '/' ? '/index.html' : urlPath)!;
    const body = await readFile(path);
    const ext = extname(path);
    res.writeHead(200, {
      'content-type': TYPES[ext] ?? 'application/octet-stream',
      'content-length': body.length,
      // Hashed asset names never change content; the page itself is always revalidated.
      'cache-control': urlPath.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      ...(ext === '.html' ? { 'content-security-policy': APP_CSP } : {}),
    });
    res.end(head ? undefined : body);
  }
}
