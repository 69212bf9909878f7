/**
 * A small builder for ONNX graphs, plus the few layer-level compositions every family uses (linear layers,
 * layer norm, GELU, splitting heads, scaled dot-product attention). Family files (bert.ts, gpt2.ts, …) call
 * these in forward order, so each reads like a reference implementation.
 *
 * Activations are 2-D `[T, D]` (one sequence, no batch axis) and per-head tensors `[H, T, d]`; T is dynamic.
 * Weights are external initializers pointing into the checkpoint's safetensors files (see load/weights.ts).
 */
import type { BlockValues, PackedMatrix } from '../load/gguf-quant.js';
import type { WeightRef, Weights } from '../load/weights.js';
import {
  type Attribute,
  AttributeType,
  DataType,
  type Dim,
  EXTERNAL,
  encodeModel,
  type Node,
  type Tensor,
  type ValueInfo,
} from './onnx.js';

/** ONNX opset: 17 is the first with LayerNormalization; onnxruntime 1.30 runs it on CPU. */
export const OPSET = 17;
/** onnxruntime's contrib operators (MatMulNBits). */
const MS_DOMAIN = 'com.microsoft';

/** Node attributes: integers, int lists, strings, and floats wrapped as `{ float: x }` (ONNX types them apart). */
type Attr = number | string | readonly number[] | { float: number };

export const ACTIVATIONS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];

const WEIGHT_TYPES = { F32: DataType.FLOAT, F16: DataType.FLOAT16, BF16: DataType.BFLOAT16 } as const;

/** Bytes handed to onnxruntime with the graph as in-memory external data (repacked quantized weights). */
export interface MemoryFile {
  path: string;
  data: Uint8Array;
}

/**
 * Per-block values' initializers: float32 `[rows, blocks]`, or factored (load/gguf-quant.ts `Factored`): codes
 * `[S, group]` and factors `[S]`, S = rows · blocks / group, a super-block per row of the codes.
 */
type BlockInitializers = string | { codes: string; factors: string; group: number };

/** A quantized matrix's initializers (see load/gguf-quant.ts) and its geometry. */
interface PackedValues extends Omit<PackedMatrix, 'codes' | 'scales' | 'zeroPoints' | 'offsets'> {
  codes: string;
  scales: BlockInitializers;
  /** The zero points (all 0, shared by the matrices of one geometry), registered when a MatMulNBits reads them. */
  zeroPoints?: () => string;
  offsets?: BlockInitializers;
  /** Scales and offsets `[rows, blocks]` as MatMulNBits and the offset term read them, made once. */
  runScales: () => string;
  runOffsets?: () => string;
}

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly initializers: Tensor[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  /** Weight name → graph value (tied embeddings are used twice but stored once). */
  private readonly weightValues = new Map<string, string>();
  private readonly packedValues = new Map<string, PackedValues>();
  private readonly zeroPointNames = new Set<string>();
  private readonly memory: MemoryFile[] = [];
  private readonly arena = new Arena();
  /**
   * onnxruntime takes external data either all from files or all from memory: with quantized weights, the
   * plain ones are read into memory too (GGUF norms, mostly: small).
   */
  private inMemoryWeights?: boolean;
  private counter = 0;

  /**
   * `inMemory`: every weight read into memory and handed over as bytes, never mapped from its file by
   * onnxruntime (a mapped file truncated under a loaded model is SIGBUS; see LoadOptions.weights).
   */
  constructor(
    private readonly weights: Weights,
    options: { inMemory?: boolean } = {},
  ) {
    if (options.inMemory) this.inMemoryWeights = true;
  }

  private get inMemory(): boolean {
    this.inMemoryWeights ??= this.weights.hasQuantized();
    return this.inMemoryWeights;
  }

  // ---- graph plumbing -------------------------------------------------------------------------------

  input(name: string, type: 'int64' | 'float', dims: readonly Dim[]): string {
    this.inputs.push({ name, elemType: type === 'int64' ? DataType.INT64 : DataType.FLOAT, dims: [...dims] });
    return name;
  }

  /** Whether a node of the graph so far makes `value`. */
  produces(value: string): boolean {
    return this.nodes.some((n) => n.output?.includes(value));
  }

  /** Declares `value` a float graph output (values are named by the node that makes them: see `op`'s `out`). */
  output(value: string, dims: readonly Dim[]): string {
    this.outputs.push({ name: value, elemType: DataType.FLOAT, dims: [...dims] });
    return value;
  }

  /** Adds one node; `out` names its output (a graph output's name), otherwise a fresh name is made. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, out?: string): string {
    return this.opN(opType, inputs, 1, attrs, out ? [out] : undefined)[0];
  }

  opN(
    opType: string,
    inputs: readonly string[],
    n: number,
    attrs: Record<string, Attr> = {},
    outs?: string[],
    domain?: string,
  ): string[] {
    const id = this.counter++;
    const output = outs ?? Array.from({ length: n }, (_, i) => `${opType.toLowerCase()}_${id}${n > 1 ? `_${i}` : ''}`);
    this.nodes.push({
      opType,
      ...(domain ? { domain } : {}),
      name: `${opType}_${id}`,
      input: [...inputs],
      output,
      attribute: Object.entries(attrs).map(([name, v]) => attribute(name, v)),
    });
    return output;
  }

  /**
   * A checkpoint tensor as a graph value, in float32 (F16/BF16 are cast once, folded at session creation;
   * a quantized matrix is dequantized in the graph, which onnxruntime also folds: `linear` and `embedding`
   * keep it quantized).
   */
  weight(ref: WeightRef): string {
    const known = this.weightValues.get(ref.name);
    if (known) return known;
    if (ref.quantized) {
      const p = this.packed(ref);
      const offsets = p.offsets && this.blockValues(p.offsets, p, 'fold');
      const value = this.dequantizeRows(p, p.codes, this.blockValues(p.scales, p, 'fold'), offsets);
      this.weightValues.set(ref.name, value);
      return value;
    }
    const type: number = WEIGHT_TYPES[ref.dtype as keyof typeof WEIGHT_TYPES];
    if (this.inMemory)
      this.external(ref.name, this.weights.read(ref, this.arena.take(ref.byteLength)), ref.shape, type);
    else
      this.initializers.push({
        name: ref.name,
        dims: [...ref.shape],
        dataType: type,
        dataLocation: EXTERNAL,
        externalData: [
          { key: 'location', value: this.weights.location(ref) },
          { key: 'offset', value: String(ref.offset) },
          { key: 'length', value: String(ref.byteLength) },
        ],
      });
    const value = type === DataType.FLOAT ? ref.name : this.op('Cast', [ref.name], { to: DataType.FLOAT });
    this.weightValues.set(ref.name, value);
    return value;
  }

  /** An int64 constant (shapes, axes, indices). */
  ints(values: readonly number[]): string {
    const name = `const_${this.counter++}`;
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: DataType.INT64,
      rawData: bytes(BigInt64Array.from(values, BigInt)),
      externalData: [],
    });
    return name;
  }

  /** A float32 scalar constant. */
  scalar(value: number): string {
    const name = `const_${this.counter++}`;
    const rawData = bytes(Float32Array.of(value));
    this.initializers.push({ name, dims: [], dataType: DataType.FLOAT, rawData, externalData: [] });
    return name;
  }

  /** A float32 constant tensor of shape `dims`, held in the graph itself (small tables such as RoPE's inv_freq). */
  floats(values: Float32Array, dims: readonly number[]): string {
    const name = `const_${this.counter++}`;
    this.initializers.push({
      name,
      dims: [...dims],
      dataType: DataType.FLOAT,
      rawData: bytes(values),
      externalData: [],
    });
    return name;
  }

  /**
   * A quantized matrix's initializers, registered once: codes, scales and the optional zero points and
   * offsets, each an in-memory external-data file (see `memoryFiles`) named after the tensor.
   */
  private packed(ref: WeightRef): PackedValues {
    const known = this.packedValues.get(ref.name);
    if (known) return known;
    const { codes, scales, zeroPoints, offsets, ...geometry } = ref.quantized!.pack((n) => this.arena.take(n));
    const { rows, blockSize, bits } = geometry;
    const blocks = geometry.cols / blockSize;
    const add = (part: string, data: ArrayBufferView, dims: number[], type: number) =>
      this.external(`${ref.name}.${part}`, data, dims, type);
    const perBlock = (part: string, v: BlockValues): BlockInitializers => {
      if (v instanceof Float32Array) return add(part, v, [rows, blocks], DataType.FLOAT);
      const type = v.codes instanceof Int8Array ? DataType.INT8 : DataType.UINT8;
      const n = v.factors.length;
      return {
        codes: add(`${part}.codes`, v.codes, [n, v.group], type),
        factors: add(`${part}.factors`, v.factors, [n], DataType.FLOAT),
        group: v.group,
      };
    };
    const scaleInits = perBlock('scales', scales),
      offsetInits = offsets && perBlock('offsets', offsets);
    const values: PackedValues = {
      ...geometry,
      codes: add('codes', codes, [rows, blocks, (blockSize * bits) / 8], DataType.UINT8),
      scales: scaleInits,
      runScales: once(() => this.blockValues(scaleInits, values, 'run')),
      ...(zeroPoints ? { zeroPoints: once(() => this.zeroPoints(rows, Math.ceil(blocks / 2))) } : {}),
      ...(offsetInits
        ? { offsets: offsetInits, runOffsets: once(() => this.blockValues(offsetInits, values, 'run')) }
        : {}),
    };
    this.packedValues.set(ref.name, values);
    return values;
  }

  /** Zero points 0 for `rows` rows of `bytes` bytes (two blocks a byte): one initializer per geometry. */
  private zeroPoints(rows: number, bytes: number): string {
    const name = `zero_points.${rows}x${bytes}`;
    if (!this.zeroPointNames.has(name)) {
      this.zeroPointNames.add(name);
      this.external(name, this.arena.take(rows * bytes), [rows, bytes], DataType.UINT8);
    }
    return name;
  }

  /**
   * Per-block values as float32: `[rows, blocks]`, or the rows `ids` of them (an embedding's), `[T, blocks]`.
   * Factored values are multiplied out in the graph. For MatMulNBits and the offset term (`run`) by a
   * DequantizeLinear, which onnxruntime's constant folding leaves alone: they are made at each run (a transient
   * of 4 bytes per block), not folded into float32 initializers at session creation. Otherwise by a Cast and a
   * Mul: on gathered rows, or on all rows where the whole matrix is dequantized (`weight`) and folded.
   */
  private blockValues(v: BlockInitializers, p: PackedValues, how: 'run' | 'fold' | { ids: string }): string {
    const ids = typeof how === 'object' ? how.ids : undefined;
    if (typeof v === 'string') return ids ? this.op('Gather', [v, ids]) : v;
    const blocks = p.cols / p.blockSize;
    if (how === 'run') {
      const values = this.op('DequantizeLinear', [v.codes, v.factors], { axis: 0 });
      return this.op('Reshape', [values, this.ints([p.rows, blocks])]);
    }
    let { codes, factors } = v;
    if (ids) {
      // Row n's blocks are rows n·perRow … n·perRow + perRow − 1 of the codes and factors: gathered `[T, perRow]`.
      const perRow = blocks / v.group;
      const first = this.op('Mul', [this.op('Unsqueeze', [ids, this.ints([-1])]), this.ints([perRow])]);
      const at = this.op('Add', [first, this.ints(Array.from({ length: perRow }, (_, i) => i))]);
      codes = this.op('Gather', [codes, at]);
      factors = this.op('Gather', [factors, at]);
    }
    const float = this.op('Cast', [codes], { to: DataType.FLOAT });
    const values = this.op('Mul', [float, this.op('Unsqueeze', [factors, this.ints([-1])])]);
    return this.op('Reshape', [values, this.ints([ids ? 0 : p.rows, blocks])]);
  }

  /** An initializer whose bytes go to onnxruntime as an in-memory external-data file of its own. */
  private external(name: string, data: ArrayBufferView, dims: readonly number[], type: number): string {
    const path = `memory/${name}`;
    this.memory.push({ path, data: bytes(data) });
    this.initializers.push({
      name,
      dims: [...dims],
      dataType: type,
      dataLocation: EXTERNAL,
      externalData: [
        { key: 'location', value: path },
        { key: 'offset', value: '0' },
        { key: 'length', value: String(data.byteLength) },
      ],
    });
    return name;
  }

  /**
   * Rows of a quantized matrix as float32 `[R, cols]`, from its codes `[R, blocks, bytes]`, scales and
   * offsets `[R, blocks]` (all rows, or rows gathered: see `blockValues`): (code − zero point)·scale + offset.
   */
  private dequantizeRows(p: PackedValues, codes: string, scales: string, offsets?: string): string {
    let q = this.op('Cast', [codes], { to: DataType.FLOAT });
    if (p.bits === 4) {
      // Byte i holds value 2i in its low nibble and 2i + 1 in its high one.
      const high = this.op('Floor', [this.op('Div', [q, this.scalar(16)])]);
      const low = this.op('Sub', [q, this.op('Mul', [high, this.scalar(16)])]);
      const pairs = [low, high].map((v) => this.op('Unsqueeze', [v, this.ints([-1])]));
      q = this.op('Reshape', [this.op('Concat', pairs, { axis: -1 }), this.ints([0, 0, p.blockSize])]);
    }
    // Zero points: 2^(bits − 1) when absent (MatMulNBits' default), 0 when given (they are all 0).
    const zero = p.zeroPoints ? 0 : 2 ** (p.bits - 1);
    let w = this.op('Mul', [this.op('Sub', [q, this.scalar(zero)]), this.op('Unsqueeze', [scales, this.ints([-1])])]);
    if (offsets) w = this.op('Add', [w, this.op('Unsqueeze', [offsets, this.ints([-1])])]);
    return this.op('Reshape', [w, this.ints([0, p.cols])]);
  }

  /** Repacked quantized weights, to pass to onnxruntime with the graph (session option `externalData`). */
  memoryFiles(): MemoryFile[] {
    return this.memory;
  }

  /** The serialized ModelProto (small: weights stay in the checkpoint files or in `memoryFiles`). */
  toBytes(): Uint8Array {
    return encodeModel({
      irVersion: 8,
      producerName: 'attnviz',
      opsetImport: [
        { domain: '', version: OPSET },
        ...(this.packedValues.size > 0 ? [{ domain: MS_DOMAIN, version: 1 }] : []),
      ],
      graph: {
        name: 'attnviz',
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
  }

  // ---- layers ---------------------------------------------------------------------------------------

  /**
   * x·Wᵀ + b for a torch nn.Linear weight `[out, in]`, written to `out` when given. A quantized W stays
   * quantized: com.microsoft MatMulNBits (float32 activations and accumulation), plus, for types with a
   * per-block offset, blocksum(x)·offsetᵀ — Σₖ x_k·(s_b·q_k + o_b) = Σₖ x_k·s_b·q_k + Σ_b
   * o_b·Σ_{k∈b} x_k.
   */
  linear(x: string, w: WeightRef, b?: WeightRef, out?: string): string {
    if (!w.quantized)
      return this.op('Gemm', b ? [x, this.weight(w), this.weight(b)] : [x, this.weight(w)], { transB: 1 }, out);
    const p = this.packed(w);
    const inputs = [x, p.codes, p.runScales(), ...(p.zeroPoints ? [p.zeroPoints()] : [])];
    const attrs = { K: p.cols, N: p.rows, bits: p.bits, block_size: p.blockSize };
    let y = this.opN('MatMulNBits', inputs, 1, attrs, undefined, MS_DOMAIN)[0];
    if (p.runOffsets) {
      const blocks = this.op('Reshape', [x, this.ints([0, p.cols / p.blockSize, p.blockSize])]);
      const sums = this.op('ReduceSum', [blocks, this.ints([-1])], { keepdims: 0 });
      y = this.add(y, this.op('Gemm', [sums, p.runOffsets()], { transB: 1 }));
    }
    return b ? this.op('Add', [y, this.weight(b)], {}, out) : out ? this.op('Identity', [y], {}, out) : y;
  }

  /** Rows `ids` of an embedding matrix `[vocab, D]`; a quantized one is dequantized for those rows only. */
  embedding(w: WeightRef, ids: string): string {
    if (!w.quantized) return this.op('Gather', [this.weight(w), ids]);
    const p = this.packed(w);
    const rows = { ids };
    const offsets = p.offsets && this.blockValues(p.offsets, p, rows);
    return this.dequantizeRows(p, this.op('Gather', [p.codes, ids]), this.blockValues(p.scales, p, rows), offsets);
  }

  /** x·W + b for a GPT-2 Conv1D weight `[in, out]`. */
  conv1d(x: string, w: WeightRef, b: WeightRef): string {
    return this.op('Gemm', [x, this.weight(w), this.weight(b)]);
  }

  layerNorm(x: string, w: WeightRef, b: WeightRef, eps: number, out?: string): string {
    return this.op(
      'LayerNormalization',
      [x, this.weight(w), this.weight(b)],
      { axis: -1, epsilon: { float: eps } },
      out,
    );
  }

  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }

  /** Exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (BERT's "gelu"). */
  geluErf(x: string): string {
    // Written as PyTorch exports it (x / √2, not x · 1/√2), the pattern onnxruntime fuses into one Gelu kernel.
    const erf = this.op('Erf', [this.op('Div', [x, this.scalar(Math.SQRT2)])]);
    return this.op('Mul', [this.op('Mul', [x, this.scalar(0.5)]), this.op('Add', [erf, this.scalar(1)])]);
  }

  /** Tanh-approximated GELU (GPT-2's "gelu_new"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
  geluTanh(x: string): string {
    // Pow(x, 3) as PyTorch exports it: the pattern onnxruntime fuses into one FastGelu kernel.
    const cube = this.op('Pow', [x, this.scalar(3)]);
    const inner = this.op('Mul', [
      this.op('Add', [x, this.op('Mul', [cube, this.scalar(0.044715)])]),
      this.scalar(Math.sqrt(2 / Math.PI)),
    ]);
    return this.op('Mul', [
      this.op('Mul', [x, this.scalar(0.5)]),
      this.op('Add', [this.op('Tanh', [inner]), this.scalar(1)]),
    ]);
  }

  /**
   * RMSNorm (Zhang & Sennrich 2019; Llama): x / √(mean(x²) + eps) · w, over the last axis. Written as
   * Pow → ReduceMean → Add → Sqrt → Div → Mul, the pattern onnxruntime fuses into one kernel (opset 17 has no
   * RMSNormalization op).
   */
  rmsNorm(x: string, w: WeightRef, eps: number, out?: string): string {
    const meanSquare = this.op('ReduceMean', [this.op('Pow', [x, this.scalar(2)])], { axes: [-1], keepdims: 1 });
    const normed = this.op('Div', [x, this.op('Sqrt', [this.op('Add', [meanSquare, this.scalar(eps)])])]);
    return this.op('Mul', [normed, this.weight(w)], {}, out);
  }

  /** SiLU (swish): x·σ(x), Llama's MLP activation. */
  silu(x: string): string {
    return this.op('Mul', [x, this.op('Sigmoid', [x])]);
  }

  /** The activation a config names (`hidden_act` / `activation_function`). */
  activation(x: string, name: ActivationName): string {
    switch (name) {
      case 'gelu':
        return this.geluErf(x);
      case 'gelu_new':
      case 'gelu_pytorch_tanh':
        return this.geluTanh(x);
      case 'relu':
        return this.op('Relu', [x]);
    }
  }

  /** `[T, H·d]` → `[H, T, d]`, written to `out` when given (the per-head q/k outputs). */
  splitHeads(x: string, heads: number, headDim: number, out?: string): string {
    const r = this.op('Reshape', [x, this.ints([0, heads, headDim])]);
    return this.op('Transpose', [r], { perm: [1, 0, 2] }, out);
  }

  /** `[H, T, d]` → `[T, H·d]`. */
  mergeHeads(x: string, heads: number, headDim: number): string {
    const t = this.op('Transpose', [x], { perm: [1, 0, 2] });
    return this.op('Reshape', [t, this.ints([0, heads * headDim])]);
  }

  /**
   * softmax(q·kᵀ·scale + mask)·v for per-head q, k, v `[H, T, d]`; the probabilities are written to `probsOut`.
   * `mask` is an additive `[T, T]` mask (0 or -inf) or undefined for full attention.
   */
  attention(q: string, k: string, v: string, scale: number, probsOut: string, mask?: string): string {
    const kT = this.op('Transpose', [k], { perm: [0, 2, 1] });
    const scores = this.op('Mul', [this.op('MatMul', [q, kT]), this.scalar(scale)]);
    const probs = this.op('Softmax', [mask ? this.op('Add', [scores, mask]) : scores], { axis: -1 }, probsOut);
    return this.op('MatMul', [probs, v]);
  }
}

function attribute(name: string, v: Attr): Attribute {
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return { name, type: AttributeType.INT, i: v };
  if ('float' in v) return { name, type: AttributeType.FLOAT, f: v.float };
  return { name, type: AttributeType.INTS, ints: [...v] };
}

/**
 * Memory for the bytes handed to onnxruntime, in 64 MB blocks. onnxruntime copies them, and attnviz drops
 * them once the session exists; glibc returns such large blocks to the system when they are freed, where
 * thousands of tensor-sized arrays would stay in its heap (measured: resident memory 2.4× the weights
 * instead of 1.4× for Llama-8B-shaped Q4_K layers).
 */
class Arena {
  private block = new Uint8Array(0);
  private used = 0;

  take(bytes: number): Uint8Array {
    const size = Math.ceil(bytes / 16) * 16;
    if (this.used + size > this.block.length) {
      this.block = new Uint8Array(Math.max(size, 64 << 20));
      this.used = 0;
    }
    this.used += size;
    return this.block.subarray(this.used - size, this.used - size + bytes);
  }
}

function once<T>(make: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: make() }).v;
}

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
