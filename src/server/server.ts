/**
 * The local server behind the app (`attnviz serve`, `npm start`): node:http, no framework. It binds
 * 127.0.0.1 unless told otherwise, answers only requests addressed to itself (security.ts), serves the app's
 * files (static.ts) and the API (handlers.ts, docs/server-api.md), and keeps loaded models in a memory-capped
 * LRU cache with one queue per model (model-cache.ts). Every error is a JSON answer; no request, however
 * malformed, stops it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AttnvizError } from '../core/errors.js';
import { ClientGone } from './body.js';
import * as api from './handlers.js';
import { HttpError, sendError } from './http-error.js';
import { ModelCache } from './model-cache.js';
import { modelKey, openModel, parseModelSpec } from './models.js';
import { allowedHosts, checkHostAndOrigin, isLoopback } from './security.js';
import { StaticFiles } from './static.js';
import * as tools from './tools.js';

export interface ServerOptions {
  /** Address to bind (default 127.0.0.1). Anything but loopback needs `allowRemote`. */
  host?: string;
  /** Port (default 8700; 0 picks a free one). */
  port?: number;
  /** Required to bind a non-loopback address: the API then answers anyone who can reach it. */
  allowRemote?: boolean;
  /** Folders whose model folders the app lists and requests may name. */
  modelRoots?: string[];
  /** The model the app starts on (default the embedded one), as a request would name it. */
  model?: string;
  /** Load the start model before answering (default true for the CLI, false here). */
  preload?: boolean;
  /** Environment for the Hugging Face cache (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE, …); default process.env. */
  env?: NodeJS.ProcessEnv;
  limits?: Partial<api.Limits>;
  /** The built app (default dist/app of this package). */
  appDir?: string;
  /** Warnings (remote binding); default console.warn. */
  warn?: (message: string) => void;
}

export interface RunningServer {
  /** http://host:port/ */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export const DEFAULT_PORT = 8700;

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host) && !options.allowRemote) {
    throw new AttnvizError(
      `refusing to bind ${host}: the server would answer other machines; pass --allow-remote to do it anyway`,
    );
  }
  if (!isLoopback(host))
    (options.warn ?? console.warn)(
      `attnviz: warning: listening on ${host}: anyone who can reach this address can use the models ` +
        `and read files under the model roots`,
    );
  const limits = { ...api.DEFAULT_LIMITS, ...options.limits };
  const env = options.env ?? process.env;
  // Relative roots are taken from the working directory, and symlinks resolved, once: the listed model ids
  // then name the same real folders as the keys models are loaded under (models.ts modelKey).
  const roots = (options.modelRoots ?? []).map((r) => {
    if (!existsSync(r)) throw new AttnvizError(`model root ${r} does not exist`);
    return realpathSync(resolve(r));
  });
  const cache = new ModelCache({
    capBytes: limits.memoryCapBytes,
    maxQueue: limits.maxQueue,
    open: (key, onProgress) => openModel(key, roots, env, onProgress),
  });
  const defaultModel = await modelKey(parseModelSpec(options.model), roots).catch((e: unknown) => {
    throw new AttnvizError(`--model ${options.model}: ${(e as Error).message}`);
  });
  if (options.preload) await cache.get(defaultModel);
  const ctx: api.Context = { cache, roots, env, limits, defaultModel, results: new api.ResultCache(64 * 2 ** 20) };
  const files = await StaticFiles.open(options.appDir ?? defaultAppDir());

  const routes: Record<
    string,
    Partial<Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>>>
  > = {
    '/api/models': { GET: (q, s) => api.getModels(ctx, q, s) },
    '/api/models/load': { POST: (q, s) => api.postLoad(ctx, q, s) },
    '/api/attention': { POST: (q, s) => api.postAttention(ctx, q, s) },
    '/api/tokens': { POST: (q, s) => api.postTokens(ctx, q, s) },
    '/api/export': { POST: (q, s) => api.postExport(ctx, q, s) },
    '/api/compare': { POST: (q, s) => tools.postCompare(ctx, q, s) },
    '/api/heads': { POST: (q, s) => tools.postHeads(ctx, q, s) },
    '/api/generate': { POST: (q, s) => tools.postGenerate(ctx, q, s) },
    '/api/status': { GET: (q, s) => api.getStatus(ctx, q, s) },
  };

  let allowed = new Set<string>();
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    checkHostAndOrigin(req, allowed);
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const method = req.method ?? 'GET';
    const route = routes[path];
    if (route) {
      const handler = route[method];
      if (!handler)
        throw new HttpError(405, `${method} is not allowed on ${path} (use ${Object.keys(route).join(', ')})`);
      return handler(req, res);
    }
    if (path.startsWith('/api/')) throw new HttpError(404, `no API endpoint ${path.slice(0, 200)}`);
    if (method !== 'GET' && method !== 'HEAD')
      throw new HttpError(405, `${method} is not allowed on ${path.slice(0, 200)}`);
    if (!files.built) throw new HttpError(503, 'the app is not built: run `npm run build`');
    if (!files.has(path)) throw new HttpError(404, `no file ${path.slice(0, 200)}`);
    return files.send(res, path, method === 'HEAD');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof ClientGone) {
        console.warn(`attnviz serve: ${req.method} ${(req.url ?? '').slice(0, 200)}: ${e.message}`);
        return void res.destroy();
      }
      if (!(e instanceof HttpError) && !(e instanceof AttnvizError))
        console.error(`attnviz serve: ${req.method} ${req.url}:`, e);
      // A body left unread (too large, wrong type) would be parsed as the next request: close the connection.
      if (!req.complete) res.setHeader('connection', 'close');
      sendError(res, e);
    });
  });
  // Bounds on the request itself; the response's time is bounded by limits.requestTimeoutMs.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({
      status,
      message:
        status === 431
          ? 'request headers too large'
          : status === 408
            ? 'request took too long to arrive'
            : 'malformed HTTP request',
    });
    socket.end(
      `HTTP/1.1 ${status} ` +
        `${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}` +
        `\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `connection: close\r\n\r\n${body}`,
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new AttnvizError(
          e.code === 'EADDRINUSE' ? `port ${options.port ?? DEFAULT_PORT} is in use (pass --port)` : e.message,
        ),
      ),
    );
    server.listen(options.port ?? DEFAULT_PORT, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  allowed = allowedHosts(host, port);
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shown}:${port}/`,
    port,
    server,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await cache.close();
    },
  };
}

/** dist/app of this package (the app bundle), found from this file's location in src/ or dist/src/. */
function defaultAppDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dir, 'dist', 'app');
}
