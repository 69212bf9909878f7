/** `attnviz serve`: the app and its local server. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { numberOption, optionalString, type Command } from './command.js';

export const serve: Command = {
  name: 'serve',
  keepsRunning: true,
  synopsis: 'serve [--port P] [--model M] [--models-dir D]… [--host H --allow-remote]',
  description: `Serve the app (the engine and the three views in the browser) on http://127.0.0.1:P/ (default 8700)
and print its URL. --model: the model it starts on (default: the embedded Universal Sentence Encoder
lite, no download); --models-dir (repeatable): folders whose models the app lists and may load (relative
folders are taken from the working directory). API: docs/server-api.md.`,
  options: {
    port: { type: 'string', short: 'p' },
    model: { type: 'string' },
    'models-dir': { type: 'string', multiple: true },
    host: { type: 'string' },
    'allow-remote': { type: 'boolean' },
  },
  async run(v) {
    const { startServer, DEFAULT_PORT } = await import('../server/server.js');
    const port =
      numberOption(v, 'port', (n) => Number.isInteger(n) && n >= 0 && n < 65536, 'a port number') ?? DEFAULT_PORT;
    const dirs = v['models-dir'];
    const roots = Array.isArray(dirs) ? [...dirs] : [];
    let model = optionalString(v, 'model');
    // A local --model is served as a folder in its own root.
    if (model !== undefined && existsSync(model)) {
      roots.push(resolve(model));
      model = `path:${resolve(model)}`;
    }
    const server = await startServer({
      port,
      host: optionalString(v, 'host'),
      allowRemote: v['allow-remote'] === true,
      model,
      modelRoots: roots,
      preload: true,
    });
    console.log(`attnviz: serving the app at ${server.url}  (Ctrl+C stops)`);
    const stop = () => void server.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  },
};
