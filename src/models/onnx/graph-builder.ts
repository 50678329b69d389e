// A small typed builder for ONNX graphs. Riverrun compiles its own graphs from checkpoint weights
// (see docs/models.md), so this is the only place that knows the protobuf layout.
import { closeSync, openSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

const OPSET = 17;
export const MS_DOMAIN = 'com.microsoft';

/** ONNX TensorProto.DataType numbers for the types Riverrun uses. */
const DataType = { float: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10 } as const;
export type DType = keyof typeof DataType;

/** A tensor flowing through the graph, referred to by name. */
export interface Value {
  readonly name: string;
}

export type Dim = number | string;
type AttrValue = number | string | number[] | bigint | { float: number } | { floats: number[] } | { ints: number[] };
export type Attrs = Record<string, AttrValue>;

type InitData = Float32Array | Uint8Array | Int8Array | Int32Array | BigInt64Array | Uint16Array;

interface Initializer {
  name: string;
  dtype: DType;
  dims: number[];
  data: InitData;
}

/** Initializers at least this large go into the external data file (protobuf is limited to 2 GB). */
const EXTERNAL_THRESHOLD = 1024;
const EXTERNAL_ALIGN = 64;

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly initializers: Initializer[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly graphName: string) {}

  private fresh(hint: string): string {
    let name = `${hint}_${this.counter++}`;
    while (this.names.has(name)) name = `${hint}_${this.counter++}`;
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`graph ${this.graphName}: duplicate tensor name ${name}`);
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Dim[]): Value {
    this.inputs.push(valueInfo(this.claim(name), dtype, shape));
    return { name };
  }

  /** Declares `value` a graph output called `name` (an Identity node renames it when needed). */
  output(value: Value, name: string, dtype: DType, shape: Dim[]): void {
    if (value.name !== name) this.nodes.push({ opType: 'Identity', input: [value.name], output: [this.claim(name)], name: `out_${name}` });
    this.outputs.push(valueInfo(name, dtype, shape));
  }

  /** A weight. Names are kept when free so that graphs stay readable in Netron. */
  weight(name: string, data: InitData, dims: number[], dtype: DType = dtypeOf(data)): Value {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`graph ${this.graphName}: initializer ${name} has ${data.length} values for dims [${dims}]`);
    const unique = this.names.has(name) ? this.fresh(name) : this.claim(name);
    this.initializers.push({ name: unique, dtype, dims, data });
    return { name: unique };
  }

  /** Small constants, e.g. shapes and axes. */
  ints(values: number[], hint = 'c'): Value {
    return this.weight(this.fresh(hint), BigInt64Array.from(values.map(BigInt)), [values.length]);
  }
  int(value: number, hint = 'c'): Value {
    return this.weight(this.fresh(hint), BigInt64Array.of(BigInt(value)), []);
  }
  float(value: number, hint = 'c'): Value {
    return this.weight(this.fresh(hint), Float32Array.of(value), []);
  }

  /** Adds one node and returns its outputs. `outputs` is the number of outputs wanted. */
  node(
    opType: string,
    inputs: (Value | null)[],
    attrs: Attrs = {},
    options: { outputs?: number; domain?: string; name?: string } = {},
  ): Value[] {
    const hint = options.name ?? opType.toLowerCase();
    const outs = Array.from({ length: options.outputs ?? 1 }, () => this.fresh(hint));
    this.nodes.push({
      opType,
      domain: options.domain ?? '',
      name: this.fresh(`n_${hint}`),
      input: inputs.map((v) => (v === null ? '' : v.name)),
      output: outs,
      attribute: Object.entries(attrs).map(([key, v]) => attribute(key, v)),
    });
    return outs.map((name) => ({ name }));
  }

  /** Single-output node. */
  op(opType: string, inputs: (Value | null)[], attrs: Attrs = {}, options: { domain?: string; name?: string } = {}): Value {
    return this.node(opType, inputs, attrs, options)[0]!;
  }

  // Thin wrappers for the most common ops keep graph code readable.
  add(a: Value, b: Value): Value {
    return this.op('Add', [a, b]);
  }
  sub(a: Value, b: Value): Value {
    return this.op('Sub', [a, b]);
  }
  mul(a: Value, b: Value): Value {
    return this.op('Mul', [a, b]);
  }
  div(a: Value, b: Value): Value {
    return this.op('Div', [a, b]);
  }
  matmul(a: Value, b: Value): Value {
    return this.op('MatMul', [a, b]);
  }
  reshape(x: Value, shape: number[]): Value {
    return this.op('Reshape', [x, this.ints(shape, 'shape')]);
  }
  transpose(x: Value, perm: number[]): Value {
    return this.op('Transpose', [x], { perm });
  }
  unsqueeze(x: Value, axes: number[]): Value {
    return this.op('Unsqueeze', [x, this.ints(axes, 'axes')]);
  }
  squeeze(x: Value, axes: number[]): Value {
    return this.op('Squeeze', [x, this.ints(axes, 'axes')]);
  }
  concat(xs: Value[], axis: number): Value {
    return this.op('Concat', xs, { axis });
  }
  cast(x: Value, to: DType): Value {
    return this.op('Cast', [x], { to: DataType[to] });
  }
  gather(data: Value, indices: Value, axis = 0): Value {
    return this.op('Gather', [data, indices], { axis });
  }
  softmax(x: Value, axis = -1): Value {
    return this.op('Softmax', [x], { axis });
  }
  slice(x: Value, starts: number[], ends: number[], axes: number[]): Value {
    return this.op('Slice', [x, this.ints(starts, 'starts'), this.ints(ends, 'ends'), this.ints(axes, 'axes')]);
  }

  /** Serializes to `<dir>/<file>` with large weights in `<file>.data` beside it. Returns the model path. */
  save(path: string): string {
    const dataPath = `${path}.data`;
    const dataName = basename(dataPath);
    const fd = openSync(dataPath, 'w');
    let offset = 0;
    const tensors: onnxProto.onnx.ITensorProto[] = [];
    try {
      for (const init of this.initializers) {
        const bytes = new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength);
        const proto: onnxProto.onnx.ITensorProto = { name: init.name, dataType: DataType[init.dtype], dims: init.dims };
        if (bytes.byteLength >= EXTERNAL_THRESHOLD) {
          const pad = (EXTERNAL_ALIGN - (offset % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
          if (pad) writeSync(fd, new Uint8Array(pad));
          offset += pad;
          writeAll(fd, bytes);
          proto.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
          proto.externalData = [
            { key: 'location', value: dataName },
            { key: 'offset', value: String(offset) },
            { key: 'length', value: String(bytes.byteLength) },
          ];
          offset += bytes.byteLength;
        } else {
          proto.rawData = bytes.slice();
        }
        tensors.push(proto);
      }
    } finally {
      closeSync(fd);
    }
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'riverrun',
      opsetImport: [
        { domain: '', version: OPSET },
        { domain: MS_DOMAIN, version: 1 },
      ],
      graph: { name: this.graphName, node: this.nodes, input: this.inputs, output: this.outputs, initializer: tensors },
    });
    const encoded = onnx.ModelProto.encode(model).finish();
    const modelFd = openSync(path, 'w');
    try {
      writeAll(modelFd, encoded);
    } finally {
      closeSync(modelFd);
    }
    return path;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  // writeSync may write less than asked for large buffers; loop in 256 MB slices.
  const slice = 1 << 28;
  for (let at = 0; at < bytes.byteLength; ) {
    at += writeSync(fd, bytes, at, Math.min(slice, bytes.byteLength - at));
  }
}

function dtypeOf(data: InitData): DType {
  if (data instanceof Float32Array) return 'float';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint16Array) return 'float16';
  return 'uint8';
}

function valueInfo(name: string, dtype: DType, shape: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DataType[dtype],
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'bigint') return { name, type: T.INT, i: Number(v) };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use { float: x } for floats`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.INTS, ints: v.ints };
}
