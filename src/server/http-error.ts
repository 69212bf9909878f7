/**
 * Errors as the server answers them: every failure is a JSON body `{ "status": N, "message": "…" }` with
 * that HTTP status. An AttnvizError (bad input: a text, a model folder) is the client's fault, 400 unless a
 * more precise status is known; anything else is a bug or a runtime failure, 500, with its message only.
 */
import type { ServerResponse } from 'node:http';
import { AttnvizError } from '../core/errors.js';
import type { ErrorBody } from '../core/protocol.js';

export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    /** Fields the answer carries besides status and message, for clients that phrase errors themselves. */
    readonly details: Omit<ErrorBody, 'status' | 'message'> = {},
  ) {
    super(message);
  }
}

export function statusOf(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (e instanceof AttnvizError) return 400;
  return 500;
}

export function messageOf(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split('\n')[0] || 'internal error';
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const bytes = Buffer.from(JSON.stringify(body));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': bytes.length,
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(bytes);
}

/** Answers `e` as JSON (or ends a response already under way: its headers went out, its status cannot change). */
export function sendError(res: ServerResponse, e: unknown): void {
  sendJson(res, statusOf(e), errorBody(e));
}

/** The JSON answer of `e` (also sent as an SSE error event or an error frame). */
export function errorBody(e: unknown): ErrorBody {
  const status = statusOf(e);
  const message = status === 500 && !(e instanceof Error) ? 'internal error' : messageOf(e);
  return { status, message, ...(e instanceof HttpError ? e.details : {}) };
}
