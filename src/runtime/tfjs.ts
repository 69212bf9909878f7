/**
 * The one module that talks to TensorFlow.js (Node), the runtime of TF.js graph models other than the embedded
 * one (USE lite runs on onnxruntime: graph/use-lite.ts), and of USE lite when asked for (the reference the tests
 * and bench/embedded.ts compare with). Pure JavaScript on the 'cpu' backend: no native addon (tfjs-node is not
 * used), nothing downloaded. TF.js is imported on first use only, so neither the ONNX path nor the embedded
 * model loads it.
 *
 * TF.js keeps one engine per process whose scope bookkeeping is global, so graph runs from every model are
 * queued here: one at a time, never interleaved across awaits.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';

export type Tf = typeof TfCore;
export type { GraphModel };

let runtime:
  | Promise<{ tf: Tf; loadGraphModel: typeof import('@tensorflow/tfjs-converter').loadGraphModel }>
  | undefined;

/** tfjs-core with the cpu backend and the converter, imported and initialised once. */
function tfjs() {
  runtime ??= (async () => {
    const [tf, , converter] = await Promise.all([
      import('@tensorflow/tfjs-core'),
      import('@tensorflow/tfjs-backend-cpu'),
      import('@tensorflow/tfjs-converter'),
    ]);
    await tf.setBackend('cpu');
    // The cpu backend greets its first tensor in Node with a banner recommending tfjs-node; not wanted here.
    (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
    return { tf, loadGraphModel: converter.loadGraphModel };
  })();
  return runtime;
}

/** The graph model of `artifacts` (model.json's topology and the weights, read from disk: nothing is fetched). */
export async function loadGraph(artifacts: TfCore.io.ModelArtifacts): Promise<{ tf: Tf; model: GraphModel }> {
  const { tf, loadGraphModel } = await tfjs();
  return { tf, model: await loadGraphModel({ load: async () => artifacts }) };
}

let queue: Promise<unknown> = Promise.resolve();

/** Runs `job` after every TF.js job queued before it (see the header). */
export function runQueued<T>(job: () => Promise<T>): Promise<T> {
  // The cpu backend's kernels resolve on microtasks: a turn of the event loop between runs lets I/O through.
  const result = queue.then(() => new Promise((resolve) => setImmediate(resolve))).then(job);
  queue = result.catch(() => undefined);
  return result;
}
