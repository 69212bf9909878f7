/**
 * The one module that talks to onnxruntime (Node). A session is built once per model from the graph bytes;
 * the weights are external data read by onnxruntime from the checkpoint files under `weightsRoot`.
 * Runs on one session are queued: a second text waits for the first instead of doubling peak memory.
 */
import ort from 'onnxruntime-node';

export type Feed =
  | { type: 'int64'; data: BigInt64Array; dims: readonly number[] }
  | { type: 'float32'; data: Float32Array; dims: readonly number[] };

export interface RunOutput {
  data: Float32Array;
  dims: readonly number[];
}

export class Session {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly session: ort.InferenceSession) {}

  /**
   * `memory`: external-data files given as bytes (repacked quantized weights, graph/builder.ts); onnxruntime
   * copies them while creating the session, so the caller's buffers can be dropped once this resolves.
   */
  static async create(
    graph: Uint8Array,
    weightsRoot: string,
    options: { threads?: number; memory?: readonly { path: string; data: Uint8Array }[] } = {},
  ): Promise<Session> {
    const session = await ort.InferenceSession.create(graph, {
      graphOptimizationLevel: 'all',
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
      ...(options.memory?.length ? { externalData: options.memory } : {}),
      // Resolves external-data locations (the safetensors files) relative to this folder.
      extra: { session: { model_external_initializers_file_folder_path: weightsRoot } },
    });
    return new Session(session);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /**
   * Runs the graph. Outputs named in `into` are written by onnxruntime straight into those buffers (views
   * into the caller's stacked [L, H, …] arrays), which saves a copy of every per-layer output.
   */
  run(feeds: Record<string, Feed>, into: Record<string, RunOutput> = {}): Promise<Record<string, RunOutput>> {
    const result = this.queue.then(async () => {
      const tensors: Record<string, ort.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) tensors[name] = new ort.Tensor(f.type, f.data, f.dims);
      const fetches: Record<string, ort.Tensor | null> = {};
      for (const name of this.session.outputNames)
        fetches[name] = into[name] ? new ort.Tensor('float32', into[name].data, into[name].dims) : null;
      const out = await this.session.run(tensors, fetches);
      const outputs: Record<string, RunOutput> = {};
      for (const [name, t] of Object.entries(out)) outputs[name] = { data: t.data as Float32Array, dims: t.dims };
      return outputs;
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  async release(): Promise<void> {
    await this.queue;
    await this.session.release();
  }
}
