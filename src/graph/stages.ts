/**
 * Splitting a built graph into stages, one per group of outputs, so that a caller can run it stage by stage
 * and take each group's outputs (a layer's probs, q, k) before the next stage runs: the memory held between
 * stages is the values that cross a boundary (the residual stream [T, D], RoPE tables), not every layer's
 * outputs. No family code knows of this: the split is read off the graph's data flow.
 *
 * Stage s holds every node that group s's outputs need and no earlier stage computed, and the nodes that read
 * those outputs (probs · v). A value made in one stage and used in a later one becomes an output of the first
 * and an input of the second ("carried"); an initializer (a weight's external-data reference) goes to every
 * stage that uses it, so each weight is read by the one stage that needs it (tied embeddings used at both
 * ends are read twice).
 */
import { DataType, decodeModel, encodeModel, type Node, type Tensor, type ValueInfo } from './onnx.js';

export interface StageGraph {
  /** The stage's serialized ModelProto. */
  graph: Uint8Array;
  /** Graph inputs: the original model's inputs it reads and the values carried in from earlier stages. */
  inputs: string[];
  /** Its group's outputs, then the values later stages read. */
  outputs: string[];
  /** Of `outputs`, the values carried to later stages (not the caller's). */
  carried: string[];
}

/**
 * Splits `model` (a serialized ModelProto with its nodes in topological order, as GraphBuilder writes them)
 * into one stage per group of graph outputs, in order, and a last stage for the outputs in no group (when
 * there are any).
 */
export function splitStages(model: Uint8Array, layerGroups: readonly (readonly string[])[]): StageGraph[] {
  const proto = decodeModel(model);
  const { graph } = proto;
  const grouped = new Set(layerGroups.flat());
  const rest = graph.output.map((v) => v.name).filter((n) => !grouped.has(n));
  const groups = rest.length > 0 ? [...layerGroups, rest] : layerGroups;
  const nodes = graph.node;
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.output) producer.set(o, i);
  });
  const types = elementTypes(graph.input, graph.initializer, nodes);
  const graphInputs = new Map(graph.input.map((v) => [v.name, v]));
  const graphOutputs = new Map(graph.output.map((v) => [v.name, v]));
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));

  // Which stage computes each node: the first whose outputs need it. The nodes that read a group's outputs
  // (probs · v) join that group's stage too, with what they need, so no group output is carried.
  const stageOf = new Int32Array(nodes.length).fill(-1);
  const claim = (roots: number[], s: number) => {
    const stack = [...roots];
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (stageOf[i] !== -1) continue;
      stageOf[i] = s;
      for (const input of nodes[i].input) {
        const at = producer.get(input);
        if (at !== undefined && stageOf[at] === -1) stack.push(at);
      }
    }
  };
  groups.forEach((group, s) => {
    claim(
      group.map((name) => {
        const at = producer.get(name);
        if (at === undefined || !graphOutputs.has(name)) throw new Error(`stage output ${name} is not a graph output`);
        return at;
      }),
      s,
    );
    const readers = nodes.flatMap((n, i) => (stageOf[i] === -1 && n.input.some((x) => group.includes(x)) ? [i] : []));
    claim(readers, s);
  });
  // The last stage that reads each value made by a node.
  const lastUse = new Map<string, number>();
  nodes.forEach((n, i) => {
    if (stageOf[i] === -1) return;
    for (const input of n.input)
      if (producer.has(input)) lastUse.set(input, Math.max(lastUse.get(input) ?? -1, stageOf[i]));
  });

  return groups.map((_, s) => {
    const own = nodes.filter((_n, i) => stageOf[i] === s);
    const inputs: ValueInfo[] = [];
    const stageInitializers: Tensor[] = [];
    const seen = new Set<string>();
    for (const n of own)
      for (const name of n.input) {
        if (name === '' || seen.has(name)) continue;
        seen.add(name);
        const init = initializers.get(name);
        const at = producer.get(name);
        if (init) stageInitializers.push(init);
        else if (graphInputs.has(name)) inputs.push(graphInputs.get(name)!);
        else if (at !== undefined && stageOf[at] < s) inputs.push(typed(name, types.get(name)!));
      }
    const made = new Set(own.flatMap((n) => n.output));
    const carried = [...made].filter((v) => (lastUse.get(v) ?? -1) > s);
    // A later group's output that this stage happens to compute is returned here, as the caller's.
    const mine = [...graphOutputs.keys()].filter((o) => made.has(o));
    const outputs = [
      ...mine.map((o) => graphOutputs.get(o)!),
      ...carried.filter((v) => !mine.includes(v)).map((v) => typed(v, types.get(v)!)),
    ];
    const stage = {
      ...proto,
      graph: {
        name: `${graph.name}_stage${s}`,
        node: own,
        initializer: stageInitializers,
        input: inputs,
        output: outputs,
      },
    };
    return {
      graph: encodeModel(stage),
      inputs: inputs.map((v) => v.name),
      outputs: outputs.map((v) => v.name),
      carried: carried.filter((v) => !mine.includes(v)),
    };
  });
}

/**
 * The element type of every value, propagated in node order: a graph input's or initializer's own, Cast's
 * `to`, bool for comparisons, int64 for Shape, Where's second input's, otherwise its first input's (the other
 * ops our families emit keep their data input's type).
 */
const BOOL_OPS = new Set(['Equal', 'Greater', 'GreaterOrEqual', 'Less', 'LessOrEqual', 'Not', 'And', 'Or', 'Xor']);

function elementTypes(
  inputs: readonly ValueInfo[],
  initializers: readonly Tensor[],
  nodes: readonly Node[],
): Map<string, number> {
  const types = new Map<string, number>();
  for (const v of inputs) types.set(v.name, v.elemType);
  for (const t of initializers) types.set(t.name, t.dataType);
  for (const n of nodes) {
    const to = n.attribute.find((a) => a.name === 'to');
    const op = n.opType;
    const type =
      op === 'Cast' && to
        ? Number(to.i)
        : BOOL_OPS.has(op)
          ? DataType.BOOL
          : op === 'Shape'
            ? DataType.INT64
            : // Where: its values' type; DequantizeLinear: its scale's (its input 0 is the integer codes).
              types.get(n.input[op === 'Where' || op === 'DequantizeLinear' ? 1 : 0] ?? '');
    if (type === undefined) throw new Error(`stages: no element type for the inputs of ${n.name} (${n.opType})`);
    for (const o of n.output) types.set(o, type);
  }
  return types;
}

/** A value of unknown shape and known element type, as a stage's input or output. */
function typed(name: string, elemType: number): ValueInfo {
  return { name, elemType };
}
