/**
 * Server-Sent Events over a POST answer (the app reads them from fetch, since EventSource cannot POST): the
 * model load's progress, the head finder's progress and generated tokens. Once the headers are out the status
 * is 200 whatever happens, so a failure travels as an `error` event carrying the error's JSON answer.
 */
import type { ServerResponse } from 'node:http';
import { errorBody } from './http-error.js';

export interface EventStream {
  send(event: string, data: unknown): void;
  /** Sends `e` as an `error` event. */
  fail(e: unknown): void;
  /**
   * True once the client has closed the connection, or the stream has ended (e.g. after a time-out while the
   * work goes on): work for it can stop.
   */
  readonly gone: boolean;
  end(): void;
}

export function eventStream(res: ServerResponse): EventStream {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  let gone = false;
  res.once('close', () => {
    gone = !res.writableFinished;
  });
  const send = (event: string, data: unknown) => {
    if (!res.destroyed && !res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  return {
    send,
    fail: (e) => send('error', errorBody(e)),
    get gone() {
      return gone || res.writableEnded;
    },
    end: () => res.end(),
  };
}
