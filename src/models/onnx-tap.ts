/**
 * Existing ONNX models as an attention source: a folder in transformers.js layout — `onnx/model.onnx` (or a
 * quantized / fp16 variant), `config.json`, `tokenizer.json` — or the path of one `.onnx` file in such a
 * folder. The graph is the model's own, not one attnviz builds: each layer's attention is found in it, the
 * tensors are added as graph outputs, and one onnxruntime session runs it. Same Attention as the engine.
 *
 * Finding attention. Every Softmax (default domain) whose input is reached, through Add / Sub (mask, bias),
 * Mul / Div (scale), Where (masked fill), Reshape, Cast and the like, from exactly one MatMul of two
 * activations (neither input a constant: that excludes classifier heads and MoE routers) is one layer's
 * attention. That MatMul's inputs are q `[B, H, T, d]` and kᵀ `[B, H, d, T]` (com.microsoft FusedMatMul
 * with transB: k `[B, H, T, d]`); graphs without a batch axis (`[H, T, d]`, attnviz's own) load too:
 *
 *   q ─(Mul/Div by a constant?)─┐
 *                               MatMul ─ Div(√d) / Mul(1/√d) ─ Add(mask) / Where(mask) ─ Softmax
 *   k ─ Transpose(…, d, T) ─────┘
 *
 * Layers are numbered by the layer index in the Softmax node names (`/layer.3/`, `/h.3/`, `/layers.3/`,
 * `/block.3/`) when every attention Softmax has one and no two share it, else by their order in the
 * topologically sorted graph (the order of the layers in every sequential Transformer).
 *
 * Scale. Reported q and k are the MatMul's inputs with constant scalar multiplications in front of it
 * undone (a Transpose swapping k's last two axes is walked through as well); s is the product of every
 * scale met on the way — those constants, FusedMatMul's alpha, and the constants or run-time scalars that
 * multiply the scores before the Softmax — so that scores = q·kᵀ·s. Both are then multiplied by
 * c = √(s·√d), which keeps the attnviz convention softmax(q·kᵀ/√d + mask) = attention whatever the model's
 * scale and wherever it sits; c = 1 for the usual s = 1/√d, so q and k are the model's own projections. A
 * torch SDPA export scales q and kᵀ by a computed √(1/√d) each before the MatMul: not a constant, so q and k
 * are tapped after it, s = 1, c = d^¼, which again gives the unscaled projections. `taps` keeps each layer's
 * s and where it was applied.
 *
 * Refused: fused attention operators (com.microsoft Attention, MultiHeadAttention, GroupQueryAttention, …,
 * ONNX's own Attention): the probabilities never exist as a tensor. Attention inside If / Loop subgraphs
 * (merged decoders), scores that sum several products (DeBERTa), cross-attention.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import onnxProto from 'onnx-proto';
import type { Attention } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { bf16ToF32, f16ToF32 } from '../core/half.js';
import { familyFor } from '../graph/families.js';
import { INPUTS, type ModelDims } from '../graph/family.js';
import { Session, type Feed, type RunOutput } from '../runtime/session.js';
import { readConfig, type ModelConfig } from '../load/config.js';
import { isDir } from '../load/onnx-source.js';
import { encodeWithin, loadTokenizer, type Encoded, type TextTokenizer } from '../load/tokenizer.js';
import { causalMask } from './feeds.js';
import { checkAttentionOptions, type AttentionModel, type AttentionOptions, READ_AS_IS } from './model.js';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;
type Node = onnxProto.onnx.INodeProto;
type Graph = onnxProto.onnx.IGraphProto;
type TensorProto = onnxProto.onnx.ITensorProto;

// ---- sources ------------------------------------------------------------------------------------------

/**
 * The model files looked for in `onnx/`, in this order: full precision, then transformers.js' dtypes from the
 * most to the least precise (fp16, q8, int8, uint8, q4, q4f16, bnb4). Another file is picked by giving its
 * path as the source, or `file`.
 */
export const ONNX_FILES = [
  'model.onnx',
  'model_fp16.onnx',
  'model_quantized.onnx',
  'model_int8.onnx',
  'model_uint8.onnx',
  'model_q4.onnx',
  'model_q4f16.onnx',
  'model_bnb4.onnx',
] as const;

export interface OnnxLoadOptions {
  /** onnxruntime intra-op threads (default: the cores this process may use, os.availableParallelism()). */
  threads?: number;
  /** A file name in the folder's `onnx/` to load instead of the first of ONNX_FILES present. */
  file?: string;
}

/** The model folder (config.json, tokenizer.json) and the .onnx file a source names. */
export async function onnxModelFiles(source: string, file?: string): Promise<{ dir: string; file: string }> {
  check(source.trim() !== '', 'no model given');
  const path = resolve(source);
  check(existsSync(path), `${source}: no such file or folder`);
  if (statSync(path).isFile()) {
    check(/\.onnx$/i.test(path), `${source}: not an .onnx file`);
    // onnx/model.onnx → the folder above onnx/; a loose file → its own folder.
    const parent = dirname(path);
    return {
      dir: basename(parent) === 'onnx' && !existsSync(join(parent, 'config.json')) ? dirname(parent) : parent,
      file: path,
    };
  }
  const onnxDir = join(path, 'onnx');
  check(
    isDir(onnxDir),
    `${source}: no onnx/ folder (an ONNX model folder in transformers.js ` +
      'layout holds onnx/model.onnx, config.json and tokenizer.json)',
  );
  if (file !== undefined) {
    check(/^[^/\\]+\.onnx$/i.test(file), `${file}: not the name of an .onnx file in onnx/`);
    check(existsSync(join(onnxDir, file)), `${source}: no onnx/${file}`);
    return { dir: path, file: join(onnxDir, file) };
  }
  const found = ONNX_FILES.find((f) => existsSync(join(onnxDir, f)));
  if (found) return { dir: path, file: join(onnxDir, found) };
  const others = (await readdir(onnxDir)).filter((f) => /\.onnx$/i.test(f));
  throw new AttnvizError(
    `${source}: onnx/ holds none of ${ONNX_FILES.join(', ')}` +
      (others.length ? ` (it has ${others.slice(0, 5).join(', ')}: pass one's path as the model)` : ''),
  );
}

// ---- finding attention in a graph ---------------------------------------------------------------------

/** Where one layer's attention is read in the graph. */
export interface OnnxAttentionTap {
  /** The Softmax node (its name, or its output when unnamed). */
  node: string;
  /** The Softmax output: `[B, H, T, T]` or `[H, T, T]` (any shape of H·T·T values). */
  probs: string;
  /** q: `[B, H, T, d]` or `[H, T, d]`. */
  query: string;
  /** k: `[…, T, d]`, or `[…, d, T]` when `keyTransposed`. */
  key: string;
  keyTransposed: boolean;
  /** Constant part of s (header): scores = q·kᵀ·scale·Π scaleTensors. */
  scale: number;
  /** Scalars computed in the graph that also multiply (power 1) or divide (power -1) the scores, read per run. */
  scaleTensors: { value: string; power: 1 | -1 }[];
  /** Where the scale is applied: on q or k before the matmul, in it (FusedMatMul alpha), on the scores after. */
  scaleAt: ('query' | 'key' | 'matmul' | 'scores')[];
  /** The Softmax axis as declared (opsets < 13 default to 1). */
  axis: number;
}

/** Operators that compute attention inside one node: the probabilities never exist as a tensor. */
const FUSED = /Attention$/;
/** Ops passed through between the score MatMul and the Softmax, and which of their inputs may carry the scores. */
const PASS: Record<string, readonly number[]> = {
  Add: [0, 1],
  Sub: [0],
  Where: [1, 2],
  Reshape: [0],
  Cast: [0],
  Identity: [0],
  Squeeze: [0],
  Unsqueeze: [0],
  Max: [0, 1],
  Min: [0, 1],
  Clip: [0],
  Expand: [0],
};
/** How far (in nodes) the scores are followed back from a Softmax. */
const MAX_DEPTH = 16;

/**
 * Every layer's attention in `model`, in layer order (header). Throws an AttnvizError naming the node for a
 * fused attention operator, and when no attention is found; `where` names the file in messages.
 */
export function findOnnxAttention(model: onnxProto.onnx.IModelProto, where: string): OnnxAttentionTap[] {
  const graph = model.graph;
  check(graph && (graph.node?.length ?? 0) > 0, `${where}: the ONNX model has no graph`);
  forEachNode(graph, (n, sub) => {
    check(
      !FUSED.test(n.opType ?? ''),
      () =>
        `${where}: node "${n.name || n.output?.[0]}" is a fused ` +
        `${n.domain || 'ai.onnx'} ${n.opType} ` +
        `operator${sub ? ' (in a subgraph)' : ''}: ` +
        'its attention probabilities are never a tensor of the graph, so attnviz ' +
        'cannot read them (export the model without fused attention)',
    );
  });
  const g = new GraphIndex(graph);
  const softmaxes = g.nodes.filter((n) => n.opType === 'Softmax' && isDefaultDomain(n.domain));
  if (softmaxes.length === 0) {
    let nested = 0;
    forEachNode(graph, (n, sub) => void (nested += sub && n.opType === 'Softmax' ? 1 : 0));
    check(
      nested === 0,
      `${where}: its Softmax nodes are inside If/Loop subgraphs (a merged decoder?), which ` +
        'attnviz cannot tap; load a graph without them (e.g. decoder_model.onnx)',
    );
    throw new AttnvizError(`${where}: no Softmax node in the graph, so no attention to read`);
  }
  const opset = Number(model.opsetImport?.find((o) => isDefaultDomain(o.domain))?.version ?? 13);
  const taps: (OnnxAttentionTap & { index: number; nameLayer: number | null })[] = [];
  for (const softmax of softmaxes) {
    const name = softmax.name || softmax.output![0];
    const paths = g.scorePaths(softmax.input![0], MAX_DEPTH, []);
    if (paths.length === 0) continue; // not attention (a classifier head, a router)
    check(
      paths.length === 1,
      () =>
        `${where}: the input of Softmax "${name}" is a sum of ${paths.length} products ` +
        `(${paths.map((p) => p.matmul.name || p.matmul.opType).join(', ')}; ` +
        `e.g. DeBERTa's disentangled attention): not supported`,
    );
    const { matmul, factors } = paths[0];
    const tap = g.tapOf(matmul, factors, where);
    const axisAttr = softmax.attribute?.find((a) => a.name === 'axis');
    taps.push({
      node: name,
      probs: softmax.output![0],
      axis: axisAttr ? Number(axisAttr.i) : opset >= 13 ? -1 : 1,
      ...tap,
      index: g.order.get(softmax)!,
      nameLayer: layerInName(softmax.name ?? ''),
    });
  }
  check(
    taps.length > 0,
    `${where}: ${softmaxes.length} Softmax node(s), none fed by a ` +
      'product of two activations (q·kᵀ): no attention found',
  );
  const named = taps.every((t) => t.nameLayer !== null) && new Set(taps.map((t) => t.nameLayer)).size === taps.length;
  taps.sort((a, b) => (named ? a.nameLayer! - b.nameLayer! : a.index - b.index));
  return taps.map(({ index: _i, nameLayer: _n, ...tap }) => tap);
}

/**
 * The layer number in an exporter's node name: `/bert/encoder/layer.3/…`, `/h.3/…`, `/model/layers.3/…`; the
 * first such part (T5's `/block.3/layer.0/` is block 3, sub-layer 0).
 */
function layerInName(name: string): number | null {
  const m = /(?:^|[/._])(?:layers?|h|blocks?)[._](\d+)(?=[/._]|$)/.exec(name);
  return m ? Number(m[1]) : null;
}

const isDefaultDomain = (d: string | null | undefined) => !d || d === 'ai.onnx';

/** Calls `f` on every node, including those of If/Loop/Scan bodies (`sub` true). */
function forEachNode(graph: Graph, f: (n: Node, sub: boolean) => void, sub = false): void {
  for (const n of graph.node ?? []) {
    f(n, sub);
    for (const a of n.attribute ?? []) {
      if (a.g) forEachNode(a.g, f, true);
      for (const s of a.graphs ?? []) forEachNode(s, f, true);
    }
  }
}

type Factor = { constant: number; at: OnnxAttentionTap['scaleAt'][number] } | { value: string; power: 1 | -1 };

/** A graph's nodes in topological order, who makes each value, and which values are constants. */
class GraphIndex {
  readonly nodes: Node[];
  readonly order = new Map<Node, number>();
  private readonly producer = new Map<string, Node>();
  private readonly initializers = new Map<string, TensorProto>();
  /** Values that depend on no graph input (initializers, Constant nodes and what is computed from them alone). */
  private readonly constant = new Set<string>();

  constructor(graph: Graph) {
    for (const t of graph.initializer ?? []) this.initializers.set(t.name!, t);
    for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) this.producer.set(o, n);
    this.nodes = topologicalOrder(graph.node ?? [], this.producer);
    this.nodes.forEach((n, i) => this.order.set(n, i));
    const inputs = new Set((graph.input ?? []).map((i) => i.name!).filter((name) => !this.initializers.has(name)));
    for (const name of this.initializers.keys()) if (!inputs.has(name)) this.constant.add(name);
    for (const n of this.nodes) {
      const ins = (n.input ?? []).filter((i) => i !== '');
      const isConst =
        ins.length > 0
          ? ins.every((i) => this.constant.has(i)) && !/^Random/.test(n.opType ?? '')
          : n.opType === 'Constant';
      if (isConst) for (const o of n.output ?? []) this.constant.add(o);
    }
  }

  isConstant(value: string): boolean {
    return this.constant.has(value);
  }

  /**
   * The MatMuls of two activations that `value` is computed from through PASS ops and scalings, with the factors met.
   */
  scorePaths(value: string, depth: number, factors: Factor[]): { matmul: Node; factors: Factor[] }[] {
    const node = this.producer.get(value);
    if (!node || this.isConstant(value)) return [];
    const ins = node.input ?? [];
    if (isScoreMatMul(node))
      return ins.slice(0, 2).every((i) => !this.isConstant(i)) ? [{ matmul: node, factors }] : [];
    if (depth === 0 || !isDefaultDomain(node.domain)) return [];
    const next = (i: number, f: Factor[]) =>
      ins[i] && !this.isConstant(ins[i]) ? this.scorePaths(ins[i], depth - 1, f) : [];
    switch (node.opType) {
      case 'Mul':
        return [0, 1].flatMap((i) => next(i, [...factors, this.factor(ins[1 - i], 1, 'scores')]));
      case 'Div':
        return next(0, [...factors, this.factor(ins[1], -1, 'scores')]);
      default:
        return (PASS[node.opType ?? ''] ?? []).flatMap((i) => next(i, factors));
    }
  }

  /** q, k and the scale of a score MatMul, with constant scalings in front of it undone. */
  tapOf(matmul: Node, factors: Factor[], where: string): Omit<OnnxAttentionTap, 'node' | 'probs' | 'axis'> {
    const all = [...factors];
    let keyTransposed = true;
    if (matmul.opType === 'FusedMatMul') {
      const attr = (name: string) => matmul.attribute?.find((a) => a.name === name);
      check(
        !Number(attr('transA')?.i ?? 0) && !Number(attr('transBatchA')?.i ?? 0) && !Number(attr('transBatchB')?.i ?? 0),
        `${where}: FusedMatMul "${matmul.name}" transposes q or a batch axis: not supported`,
      );
      keyTransposed = !Number(attr('transB')?.i ?? 0);
      const alpha = attr('alpha')?.f ?? 1;
      if (alpha !== 1) all.push({ constant: alpha, at: 'matmul' });
    }
    const q = this.unscale(matmul.input![0], all, 'query', false);
    const k = this.unscale(matmul.input![1], all, 'key', true);
    let scale = 1;
    const scaleAt = new Set<OnnxAttentionTap['scaleAt'][number]>();
    // A computed (non-constant) scale on q or k stays in the tapped tensor; c (header) takes it out.
    if (q.scaled) scaleAt.add('query');
    if (k.scaled) scaleAt.add('key');
    const scaleTensors: OnnxAttentionTap['scaleTensors'] = [];
    for (const f of all) {
      if ('constant' in f) {
        scale *= f.constant;
        scaleAt.add(f.at);
      } else {
        scaleTensors.push(f);
        scaleAt.add('scores');
      }
    }
    return {
      query: q.value,
      key: k.value,
      keyTransposed: keyTransposed !== k.transposed,
      scale,
      scaleTensors,
      scaleAt: [...scaleAt],
    };
  }

  /**
   * Follows q (or k) back through multiplications and divisions by constant scalars (adding them to
   * `factors`) and, for k, Transposes that swap the last two axes (`transposed` flips): the tensor that is
   * q or k before any constant scale.
   */
  private unscale(
    value: string,
    factors: Factor[],
    at: 'query' | 'key',
    allowTranspose: boolean,
  ): { value: string; transposed: boolean; scaled: boolean } {
    let transposed = false,
      scaled = false;
    for (let steps = 0; steps < MAX_DEPTH; steps++) {
      const node = this.producer.get(value);
      if (!node || !isDefaultDomain(node.domain)) break;
      const ins = node.input ?? [];
      if ((node.opType === 'Mul' || node.opType === 'Div') && ins.length === 2) {
        const i = node.opType === 'Div' ? 0 : this.isConstant(ins[0]) ? 1 : 0;
        const c = this.scalar(ins[1 - i]);
        if (c === null || this.isConstant(ins[i])) {
          scaled = true; // by a computed factor (torch's SDPA export), or by something that is not a scale
          break;
        }
        factors.push({ constant: node.opType === 'Div' ? 1 / c : c, at });
        value = ins[i];
      } else if (node.opType === 'Transpose' && allowTranspose && swapsLastTwo(node)) {
        transposed = !transposed;
        value = ins[0];
      } else break;
    }
    return { value, transposed, scaled };
  }

  /** A scale factor: a constant scalar when `value` is one, else a graph value to read at run time. */
  private factor(value: string, power: 1 | -1, at: 'scores'): Factor {
    const c = this.scalar(value);
    return c !== null ? { constant: power === 1 ? c : 1 / c, at } : { value, power };
  }

  /** The number a constant one-element value holds (an initializer, a Constant node, scalar ops on them), else null. */
  scalar(value: string, depth = 8): number | null {
    if (!this.isConstant(value) || depth < 0) return null;
    const init = this.initializers.get(value);
    if (init) return tensorScalar(init);
    const node = this.producer.get(value);
    if (!node) return null;
    const ins = node.input ?? [];
    const arg = (i: number) => (ins[i] ? this.scalar(ins[i], depth - 1) : null);
    const unary = (f: (x: number) => number) => {
      const x = arg(0);
      return x === null ? null : f(x);
    };
    const binary = (f: (x: number, y: number) => number) => {
      const x = arg(0),
        y = arg(1);
      return x === null || y === null ? null : f(x, y);
    };
    switch (node.opType) {
      case 'Constant': {
        const a = node.attribute?.[0];
        if (!a) return null;
        if (a.name === 'value' && a.t) return tensorScalar(a.t);
        if (a.name === 'value_float') return a.f ?? null;
        if (a.name === 'value_int') return Number(a.i);
        if (a.name === 'value_floats' && a.floats?.length === 1) return a.floats[0];
        if (a.name === 'value_ints' && a.ints?.length === 1) return Number(a.ints[0]);
        return null;
      }
      case 'Identity':
      case 'Cast':
      case 'Reshape':
      case 'Squeeze':
      case 'Unsqueeze':
        return unary((x) => x);
      case 'Sqrt':
        return unary(Math.sqrt);
      case 'Reciprocal':
        return unary((x) => 1 / x);
      case 'Neg':
        return unary((x) => -x);
      case 'Mul':
        return binary((x, y) => x * y);
      case 'Div':
        return binary((x, y) => x / y);
      case 'Add':
        return binary((x, y) => x + y);
      case 'Sub':
        return binary((x, y) => x - y);
      default:
        return null;
    }
  }
}

function isScoreMatMul(n: Node): boolean {
  return (
    (n.opType === 'MatMul' && isDefaultDomain(n.domain)) || (n.opType === 'FusedMatMul' && n.domain === 'com.microsoft')
  );
}

/** A Transpose whose perm is [0, 1, …, n-1, n-2] (kᵀ from k). */
function swapsLastTwo(n: Node): boolean {
  const perm = n.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number);
  if (!perm || perm.length < 2) return false;
  const r = perm.length;
  return perm.every((p, i) => p === (i === r - 1 ? r - 2 : i === r - 2 ? r - 1 : i));
}

/** Kahn's algorithm, ties broken by file order (which already is topological in a valid model). */
function topologicalOrder(nodes: readonly Node[], producer: Map<string, Node>): Node[] {
  const waiting = new Map<Node, number>();
  const consumers = new Map<Node, Node[]>();
  for (const n of nodes) {
    const deps = new Set(
      (n.input ?? []).map((i) => producer.get(i)).filter((p): p is Node => p !== undefined && p !== n),
    );
    waiting.set(n, deps.size);
    for (const d of deps) consumers.set(d, [...(consumers.get(d) ?? []), n]);
  }
  const index = new Map(nodes.map((n, i) => [n, i]));
  const ready = nodes.filter((n) => waiting.get(n) === 0);
  const out: Node[] = [];
  while (ready.length) {
    // Smallest file index first; the ready list stays short, so a linear scan is enough.
    let best = 0;
    for (let i = 1; i < ready.length; i++) if (index.get(ready[i])! < index.get(ready[best])!) best = i;
    const n = ready.splice(best, 1)[0];
    out.push(n);
    for (const c of consumers.get(n) ?? []) {
      const left = waiting.get(c)! - 1;
      waiting.set(c, left);
      if (left === 0) ready.push(c);
    }
  }
  // A cycle (an invalid graph) leaves nodes out; onnxruntime rejects such a graph when the session is made.
  return out.length === nodes.length ? out : [...nodes];
}

/** The value of a one-element tensor, or null (more elements, external data, a type without numbers). */
function tensorScalar(t: TensorProto): number | null {
  const dims = (t.dims ?? []).map(Number);
  if (dims.reduce((a, b) => a * b, 1) !== 1 || t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) return null;
  const raw =
    t.rawData && t.rawData.length > 0
      ? new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength)
      : null;
  switch (t.dataType) {
    case DataType.FLOAT:
      return raw ? raw.getFloat32(0, true) : (t.floatData?.[0] ?? null);
    case DataType.DOUBLE:
      return raw ? raw.getFloat64(0, true) : (t.doubleData?.[0] ?? null);
    case DataType.FLOAT16:
      return f16ToF32(raw ? raw.getUint16(0, true) : (t.int32Data?.[0] ?? NaN));
    case DataType.BFLOAT16:
      return bf16ToF32(raw ? raw.getUint16(0, true) : (t.int32Data?.[0] ?? 0));
    case DataType.INT64:
      return raw ? Number(raw.getBigInt64(0, true)) : t.int64Data?.length ? Number(t.int64Data[0]) : null;
    case DataType.INT32:
      return raw ? raw.getInt32(0, true) : (t.int32Data?.[0] ?? null);
    default:
      return null;
  }
}

// ---- the tapped graph ---------------------------------------------------------------------------------

/** Output names of one layer's tensors in the tapped graph. */
interface TapOutputs {
  probs: string;
  q: string;
  k: string;
  scales: string[];
}

/**
 * `bytes` with, per tap, a Cast to float32 of probs, q, k (and run-time scale scalars) declared as graph
 * outputs named `layers.N.attn.*` (family.ts; prefixed `attnviz.` if the graph already has such a value).
 * The additions are a second serialized ModelProto appended to the file's bytes: protobuf merges repeated
 * fields of the same embedded message, so the graph gains nodes and outputs while the original bytes, weights
 * included, are never re-encoded.
 */
function tappedBytes(
  bytes: Uint8Array,
  graph: Graph,
  taps: readonly OnnxAttentionTap[],
): { bytes: Uint8Array; outputs: TapOutputs[] } {
  const used = new Set<string>();
  for (const n of graph.node ?? []) for (const o of [...(n.input ?? []), ...(n.output ?? [])]) used.add(o);
  for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.initializer ?? [])]) used.add(v.name!);
  const fresh = (name: string) => {
    let n = name;
    while (used.has(n)) n = `attnviz.${n}`;
    used.add(n);
    return n;
  };
  const nodes: Node[] = [];
  const outputs: onnxProto.onnx.IValueInfoProto[] = [];
  const tap = (value: string, name: string) => {
    const out = fresh(name);
    nodes.push({
      opType: 'Cast',
      name: out,
      input: [value],
      output: [out],
      attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DataType.FLOAT }],
    });
    outputs.push({ name: out, type: { tensorType: { elemType: DataType.FLOAT } } });
    return out;
  };
  const names = taps.map((t, i) => ({
    probs: tap(t.probs, `layers.${i}.attn.probs`),
    q: tap(t.query, `layers.${i}.attn.q`),
    k: tap(t.key, `layers.${i}.attn.k`),
    scales: t.scaleTensors.map((s, j) => tap(s.value, `layers.${i}.attn.scale.${j}`)),
  }));
  const extra = onnx.ModelProto.encode({ graph: { node: nodes, output: outputs } }).finish();
  const out = new Uint8Array(bytes.length + extra.length);
  out.set(bytes);
  out.set(extra, bytes.length);
  return { bytes: out, outputs: names };
}

// ---- the model ----------------------------------------------------------------------------------------

/** A graph input: its element type and declared dims (numbers, or names of free axes). */
interface InputInfo {
  name: string;
  elemType: number;
  dims: (number | string)[] | null;
}

/** Graph outputs that are the model's last hidden state `[B, T, D]` / `[T, D]`, read when present. */
const HIDDEN_OUTPUTS = ['last_hidden_state', 'hidden_last'];
/** Without a position limit in config.json, inputs are bounded here (attention is T² per head). */
const DEFAULT_MAX_POSITIONS = 512;

export class OnnxModel implements AttentionModel {
  /** A graph read as it is: one text (or pair) in, no generation (that needs a cache loop attnviz builds). */
  readonly capabilities = READ_AS_IS;

  private constructor(
    /** What the user passed: a folder or an .onnx file. */
    readonly source: string,
    /** The folder of config.json and tokenizer.json. */
    readonly dir: string,
    /** The .onnx file loaded. */
    readonly file: string,
    /** config.json's model_type, with the causal flag (the subset of Model.family the app reads). */
    readonly family: { readonly modelType: string; readonly causal: boolean },
    readonly dims: ModelDims,
    /** Where each layer's attention is read, with its scale (header). */
    readonly taps: readonly OnnxAttentionTap[],
    readonly tokenizer: TextTokenizer,
    /** Bytes of the .onnx file and its external data files. */
    readonly weightBytes: number,
    private readonly session: Session,
    private readonly outputs: readonly TapOutputs[],
    private readonly inputs: readonly InputInfo[],
  ) {}

  private released = false;

  get modelType(): string {
    return this.family.modelType;
  }

  get causal(): boolean {
    return this.family.causal;
  }

  static async load(source: string, options: OnnxLoadOptions = {}): Promise<OnnxModel> {
    const { dir, file } = await onnxModelFiles(source, options.file);
    const config = await readConfig(dir);
    const modelType = config.modelType;
    const [bytes, tokenizer] = await Promise.all([readFile(file), loadTokenizer(dir, modelType)]);
    let model: onnxProto.onnx.ModelProto;
    try {
      model = onnx.ModelProto.decode(bytes);
    } catch (e) {
      throw new AttnvizError(`${file}: not an ONNX model (${firstLine(e)})`);
    }
    const taps = findOnnxAttention(model, file);
    const graph = model.graph!;
    const tapped = tappedBytes(bytes, graph, taps);
    // Inputs are checked before the session is made: each must be one attnviz feeds, of a type it can make.
    const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
    const inputs = (graph.input ?? []).filter((i) => !initializers.has(i.name)).map(inputInfo);
    for (const input of inputs) checkFeedable(input, file);
    let session: Session;
    try {
      // External data (model.onnx_data, …) is resolved relative to the .onnx file's folder.
      session = await Session.create(tapped.bytes, dirname(file), { threads: options.threads });
    } catch (e) {
      throw new AttnvizError(`${file}: onnxruntime cannot load the graph (${firstLine(e)})`);
    }
    try {
      const causal = isCausal(config);
      const weightBytes = await sizeOnDisk(file, graph);
      // One run on a short text gives the head count and head size from the tensors themselves.
      const probe = new OnnxModel(
        source,
        dir,
        file,
        { modelType, causal },
        { layers: taps.length, heads: 0, headDim: 0, hidden: 0, maxPositions: Infinity },
        taps,
        tokenizer,
        weightBytes,
        session,
        tapped.outputs,
        inputs,
      );
      const { query } = await probe.attention('Hello world');
      const [, heads, , headDim] = query!.dims;
      const hidden = config.size(['hidden_size', 'n_embd', 'd_model', 'dim'], heads * headDim);
      const maxPositions = config.size(
        ['max_position_embeddings', 'n_positions', 'n_ctx', 'max_seq_len'],
        DEFAULT_MAX_POSITIONS,
      );
      return new OnnxModel(
        source,
        dir,
        file,
        { modelType, causal },
        { layers: taps.length, heads, headDim, hidden, maxPositions },
        taps,
        tokenizer,
        weightBytes,
        session,
        tapped.outputs,
        inputs,
      );
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /** Every layer's and head's attention, q and k for `text` (and `pair`). */
  tokenize(text: string, pair: string | null = null): Encoded {
    return this.tokenizer.encode(text, pair);
  }

  async attention(text: string, options: AttentionOptions = {}): Promise<Attention> {
    check(!this.released, `${this.source}: the model was released`);
    checkAttentionOptions(this, options);
    const pair = options.pair ?? null;
    const encoded = encodeWithin(this.tokenizer, text, options, {
      maxPositions: this.dims.maxPositions,
      source: this.source,
    });
    const out = await this.session.run(this.feeds(encoded));
    const T = encoded.ids.length;
    const layers = this.outputs.map((names, i) => this.layer(i, names, out, T));
    const heads = layers[0].heads,
      headDim = layers[0].headDim,
      kvHeads = layers[0].kvHeads;
    const L = layers.length;
    check(
      layers.every((l) => l.heads === heads && l.headDim === headDim && l.kvHeads === kvHeads),
      `${this.file}: layers differ in head count or head size, which attnviz's Attention cannot hold`,
    );
    const attention = new Float32Array(L * heads * T * T),
      query = new Float32Array(L * heads * T * headDim),
      key = new Float32Array(L * heads * T * headDim);
    layers.forEach((l, i) => {
      attention.set(l.probs, i * l.probs.length);
      query.set(l.query, i * l.query.length);
      key.set(l.key, i * l.key.length);
    });
    const hiddenName = HIDDEN_OUTPUTS.find((n) => out[n]);
    const hidden = hiddenName ? out[hiddenName] : undefined;
    return {
      tokens: encoded.tokens,
      text,
      pair,
      sentenceBStart: encoded.sentenceBStart,
      model: { source: this.source, modelType: this.family.modelType },
      causal: this.family.causal,
      attention: { dims: [L, heads, T, T], data: attention },
      query: { dims: [L, heads, T, headDim], data: query },
      key: { dims: [L, heads, T, headDim], data: key },
      ...(hidden && hidden.dims.length >= 2 && hidden.data.length === T * hidden.dims[hidden.dims.length - 1]
        ? { hiddenLast: { dims: [T, hidden.dims[hidden.dims.length - 1]], data: hidden.data } }
        : {}),
      inputIds: encoded.ids,
      special: encoded.special,
      ...(kvHeads !== heads ? { kvHeads } : {}),
    };
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }

  /**
   * One layer's tensors from the run, batch axis dropped: probs `[H, T, T]`, q and k `[H, T, d]` (k repeated
   * per query head when the graph has fewer key heads), both multiplied by c = √(s·√d) (header).
   */
  private layer(i: number, names: TapOutputs, out: Record<string, RunOutput>, T: number) {
    const tap = this.taps[i];
    const where = `${this.file}: layer ${i} (Softmax "${tap.node}")`;
    const p = out[names.probs],
      q = out[names.q],
      k = out[names.k];
    const rank = p.dims.length;
    check(tap.axis === -1 || tap.axis === rank - 1, `${where}: softmax over axis ${tap.axis} of ${rank}, not the last`);
    const headsOf = (dims: readonly number[]) => dims.slice(0, -2).reduce((a, b) => a * b, 1);
    check(
      q.dims.length >= 2 && q.dims[q.dims.length - 2] === T,
      () => `${where}: q has shape [${q.dims.join(', ')}], not […, ${T} tokens, head size]`,
    );
    const heads = headsOf(q.dims),
      d = q.dims[q.dims.length - 1];
    const kT = k.dims[k.dims.length - (tap.keyTransposed ? 1 : 2)],
      kd = k.dims[k.dims.length - (tap.keyTransposed ? 2 : 1)];
    check(
      k.dims.length >= 2 && kd === d,
      () => `${where}: k has shape [${k.dims.join(', ')}], which does not match q's [${q.dims.join(', ')}]`,
    );
    check(
      kT === T,
      () =>
        `${where}: keys span ${kT} positions for ${T} tokens: not ` +
        'self-attention over the text (cross-attention is not supported)',
    );
    const kvHeads = headsOf(k.dims);
    check(kvHeads > 0 && heads % kvHeads === 0, () => `${where}: ${heads} query heads but ${kvHeads} key heads`);
    check(
      p.data.length === heads * T * T,
      () => `${where}: probabilities of shape [${p.dims.join(', ')}] are not ${heads} heads × ${T} × ${T}`,
    );
    let s = tap.scale;
    tap.scaleTensors.forEach((f, j) => {
      const v = out[names.scales[j]];
      check(
        v.data.length === 1,
        () => `${where}: the scores are multiplied by "${f.value}" of shape [${v.dims.join(', ')}], not a scalar`,
      );
      s *= f.power === 1 ? v.data[0] : 1 / v.data[0];
    });
    check(Number.isFinite(s) && s > 0, `${where}: the scores are scaled by ${s}, which q and k cannot carry`);
    let c = Math.sqrt(s * Math.sqrt(d));
    if (Math.abs(c - 1) < 1e-6) c = 1; // s is 1/√d rounded to float32: leave q and k bit for bit
    const query = c === 1 ? q.data : q.data.map((x) => x * c);
    // k to [H, T, d]: transposed back from [d, T] where needed, each kv head repeated for its query heads.
    const key = new Float32Array(heads * T * d);
    const group = heads / kvHeads;
    for (let h = 0; h < heads; h++) {
      const src = Math.floor(h / group) * T * d;
      for (let t = 0; t < T; t++)
        for (let j = 0; j < d; j++)
          key[(h * T + t) * d + j] = k.data[src + (tap.keyTransposed ? j * T + t : t * d + j)] * c;
    }
    return { heads, headDim: d, kvHeads, probs: p.data, query, key };
  }

  /** The inputs the graph declares, for a batch of one text with an empty cache. */
  private feeds(e: Encoded): Record<string, Feed> {
    const T = e.ids.length;
    const feeds: Record<string, Feed> = {};
    for (const input of this.inputs) {
      const kind = feedKind(input.name)!;
      const where = `${this.file}: graph input "${input.name}"`;
      if (kind === 'past') {
        feeds[input.name] = emptyPast(input, where);
        continue;
      }
      if (kind === 'causalMask') {
        check(input.elemType === DataType.FLOAT, `${where} must be float32`);
        feeds[input.name] = { type: 'float32', data: causalMask(T), dims: [T, T] };
        continue;
      }
      const values =
        kind === 'ids'
          ? e.ids
          : kind === 'types'
            ? e.typeIds
            : kind === 'mask'
              ? e.ids.map(() => 1)
              : e.ids.map((_, i) => i);
      // Declared rank: [batch, T] as exporters write it, [T] in attnviz's own graphs (and cache_position).
      const dims = (input.dims?.length ?? (kind === 'cachePosition' ? 1 : 2)) === 1 ? [T] : [1, T];
      if (input.elemType === DataType.INT64)
        feeds[input.name] = { type: 'int64', data: BigInt64Array.from(values, BigInt), dims };
      else if (input.elemType === DataType.FLOAT)
        feeds[input.name] = { type: 'float32', data: Float32Array.from(values), dims };
      else
        throw new AttnvizError(
          `${where} has element type ${DataType[input.elemType] ?? input.elemType}; attnviz feeds int64 or float32`,
        );
    }
    return feeds;
  }
}

function checkFeedable(input: InputInfo, file: string): void {
  const kind = feedKind(input.name);
  const where = `${file}: graph input "${input.name}"`;
  check(
    kind,
    `${where} is none that attnviz can feed (input_ids, attention_mask, ` +
      'token_type_ids, position_ids, cache_position, past_key_values.*)',
  );
  if (kind === 'past') emptyPast(input, where);
  else {
    const types: number[] = kind === 'causalMask' ? [DataType.FLOAT] : [DataType.INT64, DataType.FLOAT];
    check(
      types.includes(input.elemType),
      `${where} has element type ${DataType[input.elemType] ?? input.elemType}; attnviz ` +
        `feeds it as ${kind === 'causalMask' ? 'float32' : 'int64 or float32'}`,
    );
  }
}

type FeedKind = 'ids' | 'mask' | 'types' | 'positions' | 'cachePosition' | 'causalMask' | 'past';

function feedKind(name: string): FeedKind | null {
  if (name === INPUTS.inputIds) return 'ids';
  if (name === 'attention_mask') return 'mask';
  if (name === INPUTS.tokenTypeIds) return 'types';
  if (name === INPUTS.positionIds) return 'positions';
  if (name === 'cache_position') return 'cachePosition';
  if (name === INPUTS.causalMask) return 'causalMask';
  if (/^past_key_values[._]|^past_(key|value)s?[._]/.test(name)) return 'past';
  return null;
}

/** A cache input with nothing in it: the past-sequence axis 0, the batch 1, the other axes as declared. */
function emptyPast(input: InputInfo, where: string): Feed {
  check(
    input.elemType === DataType.FLOAT,
    () =>
      `${where} is a ${DataType[input.elemType] ?? input.elemType} cache; ` +
      'attnviz feeds a float32 one only (load the float32 model.onnx)',
  );
  const dims = input.dims;
  check(dims && dims.length >= 3, `${where} has no declared shape to make an empty cache from`);
  let seq = dims.findIndex((d) => typeof d === 'string' && /seq|past|len/i.test(d));
  if (seq < 0) seq = dims.length === 4 ? 2 : dims.length - 2;
  const shape = dims.map((d, i) => {
    if (i === seq) return 0;
    if (typeof d === 'number') return d;
    check(i === 0, `${where}: axis ${i} ("${d}") has no fixed size`);
    return 1;
  });
  return { type: 'float32', data: new Float32Array(0), dims: shape };
}

function inputInfo(v: onnxProto.onnx.IValueInfoProto): InputInfo {
  const t = v.type?.tensorType;
  const dims =
    t?.shape?.dim?.map((d) =>
      d.dimValue !== null && d.dimValue !== undefined && Number(d.dimValue) > 0
        ? Number(d.dimValue)
        : d.dimParam || '?',
    ) ?? null;
  return { name: v.name!, elemType: t?.elemType ?? DataType.UNDEFINED, dims };
}

/**
 * Decoders attend only backwards: config.json's is_decoder, a causal-LM architecture, or a decoder family attnviz
 * knows.
 */
function isCausal(config: ModelConfig): boolean {
  if (config.raw.is_decoder === true) return true;
  const architectures = config.raw.architectures;
  if (
    Array.isArray(architectures) &&
    architectures.some((a) => typeof a === 'string' && /(CausalLM|LMHeadModel)$/.test(a))
  )
    return true;
  try {
    return familyFor(config).causal;
  } catch {
    return false;
  }
}

/** The .onnx file plus every external-data file its initializers name. */
async function sizeOnDisk(file: string, graph: Graph): Promise<number> {
  const locations = new Set<string>();
  for (const t of graph.initializer ?? []) {
    const location = t.externalData?.find((e) => e.key === 'location')?.value;
    if (location) locations.add(location);
  }
  let total = (await stat(file)).size;
  for (const l of locations)
    total += await stat(join(dirname(file), l)).then(
      (s) => s.size,
      () => 0,
    );
  return total;
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e)
    .split('\n')[0]
    .trim();
}
