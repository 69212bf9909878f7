/** Request bodies: JSON objects only, bounded in size. */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.js';

/** A request whose client disconnected before sending its whole body. */
export class ClientGone extends HttpError {
  constructor(message: string) {
    super(400, message);
  }
}

export async function readJsonBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json')
    throw new HttpError(415, `send the request body as application/json, not "${type.slice(0, 100) || 'nothing'}"`);
  const declared = Number(req.headers['content-length']);
  if (declared > limit)
    throw new HttpError(413, `request body of ${declared} bytes is over this server's limit of ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new HttpError(413, `request body is over this server's limit of ${limit} bytes`);
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof HttpError) throw e;
    // Node's "aborted" (ECONNRESET): the client went away; nobody is left to answer, and it is no bug.
    throw new ClientGone(`the client hung up after ${size} bytes of the body`);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `malformed JSON body (${(e as Error).message})`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(400, 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Rejects fields other than `allowed`, so a misspelt option is an error rather than silently ignored. */
export function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length)
    throw new HttpError(
      400,
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k.slice(0, 50)}"`).join(', ')} ` +
        `(expected ${allowed.join(', ')})`,
    );
}

export function optionalString(body: Record<string, unknown>, name: string): string | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new HttpError(400, `"${name}" must be a string`);
  return v;
}

export function optionalBoolean(body: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new HttpError(400, `"${name}" must be true or false`);
  return v;
}
