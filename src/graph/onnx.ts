/**
 * The ONNX messages attnviz's own graphs are made of (onnx.proto: ModelProto, GraphProto, NodeProto,
 * AttributeProto, TensorProto, ValueInfoProto and what they hold), as plain objects, written and read with pbf
 * (Mapbox's small protobuf library: the wire format, no schema). GraphBuilder writes them, stages.ts reads and
 * splits them. Not onnx-proto: importing it (protobufjs and the whole ONNX schema) cost every start of the CLI
 * and the server ~50–100 ms of CPU (bench/RESULTS.md, start-up); onnx-tap.ts, which reads any .onnx file,
 * still uses it, imported only for such a file.
 *
 * The bytes are those protobufjs wrote for the same messages: fields in field-number order, a field written
 * whenever it is set (proto2 presence: an explicit 0 or '' is written), repeated int64 packed, empty repeated
 * fields left out. Reading accepts only the fields written here, so a split graph cannot silently lose one.
 */
import { PbfReader, PbfWriter } from 'pbf';

/** TensorProto.DataType values used by the families. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT64: 7, BOOL: 9, FLOAT16: 10, BFLOAT16: 16 } as const;
/** AttributeProto.AttributeType values GraphBuilder writes. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;
/** TensorProto.DataLocation.EXTERNAL: the data is in a file (or an in-memory external-data file). */
export const EXTERNAL = 1;

export interface Attribute {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  ints?: number[];
}

export interface Node {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  attribute: Attribute[];
  domain?: string;
}

export interface Tensor {
  dims: number[];
  dataType: number;
  name: string;
  rawData?: Uint8Array;
  externalData: { key: string; value: string }[];
  dataLocation?: number;
}

/** A dimension: a size, or a symbolic name (`T`). */
export type Dim = number | string;

/** A tensor-typed graph input or output; `dims` undefined leaves the shape unknown (no TensorShapeProto). */
export interface ValueInfo {
  name: string;
  elemType: number;
  dims?: Dim[];
}

export interface Graph {
  node: Node[];
  name: string;
  initializer: Tensor[];
  input: ValueInfo[];
  output: ValueInfo[];
}

export interface Model {
  irVersion: number;
  producerName: string;
  graph: Graph;
  opsetImport: { domain: string; version: number }[];
}

// ---- writing --------------------------------------------------------------------------------------------

/** The serialized ModelProto. */
export function encodeModel(m: Model): Uint8Array {
  const pbf = new PbfWriter();
  pbf.writeVarintField(1, m.irVersion);
  pbf.writeStringField(2, m.producerName);
  pbf.writeMessage(7, writeGraph, m.graph);
  for (const o of m.opsetImport)
    pbf.writeMessage(
      8,
      (x: typeof o, p: PbfWriter) => {
        p.writeStringField(1, x.domain);
        p.writeVarintField(2, x.version);
      },
      o,
    );
  return pbf.finish();
}

function writeGraph(g: Graph, pbf: PbfWriter): void {
  for (const n of g.node) pbf.writeMessage(1, writeNode, n);
  pbf.writeStringField(2, g.name);
  for (const t of g.initializer) pbf.writeMessage(5, writeTensor, t);
  for (const v of g.input) pbf.writeMessage(11, writeValueInfo, v);
  for (const v of g.output) pbf.writeMessage(12, writeValueInfo, v);
}

function writeNode(n: Node, pbf: PbfWriter): void {
  for (const s of n.input) pbf.writeStringField(1, s);
  for (const s of n.output) pbf.writeStringField(2, s);
  pbf.writeStringField(3, n.name);
  pbf.writeStringField(4, n.opType);
  for (const a of n.attribute) pbf.writeMessage(5, writeAttribute, a);
  if (n.domain !== undefined) pbf.writeStringField(7, n.domain);
}

function writeAttribute(a: Attribute, pbf: PbfWriter): void {
  pbf.writeStringField(1, a.name);
  if (a.f !== undefined) pbf.writeFloatField(2, a.f);
  if (a.i !== undefined) pbf.writeVarintField(3, a.i);
  if (a.s !== undefined) pbf.writeBytesField(4, a.s);
  if (a.ints) pbf.writePackedVarint(8, a.ints);
  pbf.writeVarintField(20, a.type);
}

function writeTensor(t: Tensor, pbf: PbfWriter): void {
  pbf.writePackedVarint(1, t.dims);
  pbf.writeVarintField(2, t.dataType);
  pbf.writeStringField(8, t.name);
  if (t.rawData !== undefined) pbf.writeBytesField(9, t.rawData);
  for (const e of t.externalData)
    pbf.writeMessage(
      13,
      (x: typeof e, p: PbfWriter) => {
        p.writeStringField(1, x.key);
        p.writeStringField(2, x.value);
      },
      e,
    );
  if (t.dataLocation !== undefined) pbf.writeVarintField(14, t.dataLocation);
}

/** ValueInfoProto { name, type: { tensor_type: { elem_type, shape: { dim: [{ dim_value | dim_param }] } } } }. */
function writeValueInfo(v: ValueInfo, pbf: PbfWriter): void {
  pbf.writeStringField(1, v.name);
  pbf.writeMessage(2, (x: ValueInfo, p: PbfWriter) => p.writeMessage(1, writeTensorType, x), v);
}

function writeTensorType(v: ValueInfo, pbf: PbfWriter): void {
  pbf.writeVarintField(1, v.elemType);
  if (v.dims)
    pbf.writeMessage(
      2,
      (dims: Dim[], p: PbfWriter) => {
        for (const d of dims)
          p.writeMessage(
            1,
            (x: Dim, q: PbfWriter) => {
              if (typeof x === 'string') q.writeStringField(2, x);
              else q.writeVarintField(1, x);
            },
            d,
          );
      },
      v.dims,
    );
}

// ---- reading --------------------------------------------------------------------------------------------

/** Reads a ModelProto written by encodeModel; any other field is an error. */
export function decodeModel(bytes: Uint8Array): Model {
  const m: Model = { irVersion: 0, producerName: '', graph: emptyGraph(), opsetImport: [] };
  return new PbfReader(bytes).readFields((tag, x, pbf) => {
    if (tag === 1) x.irVersion = pbf.readVarint(true);
    else if (tag === 2) x.producerName = pbf.readString();
    else if (tag === 7) x.graph = pbf.readMessage(readGraph, emptyGraph());
    else if (tag === 8)
      x.opsetImport.push(
        pbf.readMessage(
          (t, o, p) => {
            if (t === 1) o.domain = p.readString();
            else if (t === 2) o.version = p.readVarint(true);
            else unknown('OperatorSetIdProto', t);
          },
          { domain: '', version: 0 },
        ),
      );
    else unknown('ModelProto', tag);
  }, m);
}

const emptyGraph = (): Graph => ({ node: [], name: '', initializer: [], input: [], output: [] });

function readGraph(tag: number, g: Graph, pbf: PbfReader): void {
  if (tag === 1) g.node.push(pbf.readMessage(readNode, { input: [], output: [], name: '', opType: '', attribute: [] }));
  else if (tag === 2) g.name = pbf.readString();
  else if (tag === 5)
    g.initializer.push(pbf.readMessage(readTensor, { dims: [], dataType: 0, name: '', externalData: [] }));
  else if (tag === 11) g.input.push(pbf.readMessage(readValueInfo, { name: '', elemType: 0 }));
  else if (tag === 12) g.output.push(pbf.readMessage(readValueInfo, { name: '', elemType: 0 }));
  else unknown('GraphProto', tag);
}

function readNode(tag: number, n: Node, pbf: PbfReader): void {
  if (tag === 1) n.input.push(pbf.readString());
  else if (tag === 2) n.output.push(pbf.readString());
  else if (tag === 3) n.name = pbf.readString();
  else if (tag === 4) n.opType = pbf.readString();
  else if (tag === 5) n.attribute.push(pbf.readMessage(readAttribute, { name: '', type: 0 }));
  else if (tag === 7) n.domain = pbf.readString();
  else unknown('NodeProto', tag);
}

function readAttribute(tag: number, a: Attribute, pbf: PbfReader): void {
  if (tag === 1) a.name = pbf.readString();
  else if (tag === 2) a.f = pbf.readFloat();
  else if (tag === 3) a.i = pbf.readVarint(true);
  else if (tag === 4) a.s = pbf.readBytes();
  else if (tag === 8) a.ints = pbf.readPackedVarint(a.ints, true);
  else if (tag === 20) a.type = pbf.readVarint(true);
  else unknown('AttributeProto', tag);
}

function readTensor(tag: number, t: Tensor, pbf: PbfReader): void {
  if (tag === 1) pbf.readPackedVarint(t.dims, true);
  else if (tag === 2) t.dataType = pbf.readVarint(true);
  else if (tag === 8) t.name = pbf.readString();
  else if (tag === 9) t.rawData = pbf.readBytes();
  else if (tag === 13)
    t.externalData.push(
      pbf.readMessage(
        (k, e, p) => {
          if (k === 1) e.key = p.readString();
          else if (k === 2) e.value = p.readString();
          else unknown('StringStringEntryProto', k);
        },
        { key: '', value: '' },
      ),
    );
  else if (tag === 14) t.dataLocation = pbf.readVarint(true);
  else unknown('TensorProto', tag);
}

function readValueInfo(tag: number, v: ValueInfo, pbf: PbfReader): void {
  if (tag === 1) v.name = pbf.readString();
  else if (tag === 2)
    pbf.readMessage((t, x, p) => (t === 1 ? p.readMessage(readTensorType, x) : unknown('TypeProto', t)), v);
  else unknown('ValueInfoProto', tag);
}

function readTensorType(tag: number, v: ValueInfo, pbf: PbfReader): void {
  if (tag === 1) v.elemType = pbf.readVarint(true);
  else if (tag === 2) {
    const dims: Dim[] = [];
    pbf.readMessage((t, _x, p) => {
      if (t !== 1) unknown('TensorShapeProto', t);
      let d: Dim = 0;
      p.readMessage((k, _y, q) => {
        if (k === 1) d = q.readVarint(true);
        else if (k === 2) d = q.readString();
        else unknown('TensorShapeProto.Dimension', k);
      }, null);
      dims.push(d);
    }, null);
    v.dims = dims;
  } else unknown('TypeProto.Tensor', tag);
}

function unknown(message: string, field: number): never {
  throw new Error(`onnx.ts: field ${field} of ${message} is not one attnviz's graphs use`);
}
