// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// then raw little-endian tensor bytes. Tensors are read one at a time by offset so that a multi-GB
// checkpoint is never held in one buffer.
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { CheckpointError } from './errors.ts';

type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'I8' | 'BOOL' | 'F64';

const BYTES: Record<SafetensorsDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1, I8: 1, BOOL: 1 };

export interface TensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

const MAX_HEADER = 100 * 1024 * 1024;

export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new CheckpointError('CHECKPOINT_MISSING_FILE', path, `cannot open: ${(err as Error).message}`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new CheckpointError('CHECKPOINT_TRUNCATED', path, `file is ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER || 8 + headerLen > size) {
        throw new CheckpointError(
          'CHECKPOINT_CORRUPT',
          path,
          `header length ${headerLen} does not fit in a file of ${size} bytes (not a safetensors file, or truncated)`,
        );
      }
      const headerBuf = Buffer.alloc(headerLen);
      readSync(fd, headerBuf, 0, headerLen, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBuf.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new CheckpointError('CHECKPOINT_CORRUPT', path, 'header is not valid JSON');
      }
      const dataStart = 8 + headerLen;
      const tensors = new Map<string, TensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header)) {
        if (name === '__metadata__') {
          metadata = raw as Record<string, string>;
          continue;
        }
        const info = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
        const dtype = info.dtype as SafetensorsDType;
        if (!(dtype in BYTES) || !Array.isArray(info.shape) || !Array.isArray(info.data_offsets)) {
          throw new CheckpointError('CHECKPOINT_CORRUPT', path, `tensor ${name} has an invalid header entry`);
        }
        const [b, e] = info.data_offsets;
        const count = info.shape.reduce((x, y) => x * y, 1);
        if (e - b !== count * BYTES[dtype]) {
          throw new CheckpointError('CHECKPOINT_CORRUPT', path, `tensor ${name}: ${e - b} bytes for shape [${info.shape}] of ${dtype}`);
        }
        if (dataStart + e > size) {
          throw new CheckpointError(
            'CHECKPOINT_TRUNCATED',
            path,
            `tensor ${name} ends at byte ${dataStart + e} but the file has ${size} bytes (incomplete download?)`,
          );
        }
        tensors.set(name, { dtype, shape: info.shape, begin: dataStart + b, end: dataStart + e });
      }
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new CheckpointError('CHECKPOINT_MISSING_TENSOR', this.path, `has no tensor ${name}`);
    return info;
  }

  /** Reads a floating-point tensor as float32, checking its shape when `shape` is given. */
  float32(name: string, shape?: number[]): Float32Array {
    const info = this.info(name);
    if (shape && (shape.length !== info.shape.length || shape.some((d, i) => d !== info.shape[i]))) {
      throw new CheckpointError('CHECKPOINT_SHAPE', this.path, `tensor ${name} has shape [${info.shape}], the config implies [${shape}]`);
    }
    const bytes = this.bytes(info);
    const n = bytes.byteLength / BYTES[info.dtype];
    switch (info.dtype) {
      case 'F32':
        return new Float32Array(bytes.buffer, bytes.byteOffset, n);
      case 'F64':
        return Float32Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, n));
      case 'F16': {
        const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = halfToFloat(src[i]!);
        return out;
      }
      case 'BF16': {
        const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
        const out = new Float32Array(n);
        const bits = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
        return out;
      }
      default:
        throw new CheckpointError('CHECKPOINT_DTYPE', this.path, `tensor ${name} is ${info.dtype}, expected a float type`);
    }
  }

  /** Reads an integer tensor (I64 or I32) as int64. */
  int64(name: string): BigInt64Array {
    const info = this.info(name);
    const bytes = this.bytes(info);
    if (info.dtype === 'I64') return new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
    if (info.dtype === 'I32')
      return BigInt64Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), (v) => BigInt(v));
    throw new CheckpointError('CHECKPOINT_DTYPE', this.path, `tensor ${name} is ${info.dtype}, expected an integer type`);
  }

  private bytes(info: TensorInfo): Uint8Array {
    if (this.fd === null) throw new Error(`${this.path} is closed`);
    // A fresh ArrayBuffer per tensor keeps the returned typed arrays aligned.
    const buf = new Uint8Array(new ArrayBuffer(info.end - info.begin));
    let at = 0;
    while (at < buf.byteLength) {
      const n = readSync(this.fd, buf, at, Math.min(1 << 28, buf.byteLength - at), info.begin + at);
      if (n === 0) throw new CheckpointError('CHECKPOINT_TRUNCATED', this.path, 'unexpected end of file');
      at += n;
    }
    return buf;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A tensor held in memory. */
export interface TensorToWrite {
  dtype: 'F32' | 'I64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

/** A float32 tensor produced chunk by chunk, so that a multi-GB checkpoint is written in bounded memory. */
export interface GeneratedTensor {
  dtype: 'F32';
  shape: number[];
  /** Writes the tensor's next `out.length` values (row-major; always whole rows of the last dimensions). */
  generate(out: Float32Array): void;
}

export interface WriteSafetensorsOptions {
  metadata?: Record<string, string>;
  /** Called after every chunk with bytes of tensor data written so far / in all. */
  onProgress?: (done: number, total: number) => void;
}

const CHUNK_ELEMENTS = 1 << 20;
const BYTES_PER_ELEMENT = { F32: 4, I64: 8 } as const;

const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Writes a safetensors file with names sorted and the header padded with spaces to a multiple of 8.
 * The file is written to `<path>.partial` and renamed, so a file at `path` is always complete.
 */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, TensorToWrite | GeneratedTensor>,
  options: WriteSafetensorsOptions = {},
): void {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: options.metadata ?? { format: 'pt' } };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const bytes = BYTES_PER_ELEMENT[t.dtype] * elementCount(t.shape);
    if ('data' in t && t.data.byteLength !== bytes)
      throw new RangeError(`tensor ${name}: shape [${t.shape}] needs ${bytes} bytes, data has ${t.data.byteLength}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const total = offset;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));

  const tmp = `${path}.partial`;
  const fd = openSync(tmp, 'w');
  let ok = false;
  try {
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    let done = 0;
    let chunk: Float32Array | undefined;
    for (const name of names) {
      const t = tensors.get(name)!;
      if ('data' in t) {
        writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
        done += t.data.byteLength;
        options.onProgress?.(done, total);
        continue;
      }
      const count = elementCount(t.shape);
      const rowLen = elementCount(t.shape.slice(1));
      const perChunk = Math.max(rowLen, Math.floor(CHUNK_ELEMENTS / rowLen) * rowLen);
      if (chunk === undefined || chunk.length < perChunk) chunk = new Float32Array(Math.max(perChunk, CHUNK_ELEMENTS));
      for (let at = 0; at < count; at += perChunk) {
        const view = chunk.subarray(0, Math.min(perChunk, count - at));
        t.generate(view);
        writeAll(fd, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
        done += view.byteLength;
        options.onProgress?.(done, total);
      }
    }
    if (total === 0) options.onProgress?.(0, 0);
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) rmSync(tmp, { force: true });
  }
  renameSync(tmp, path);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.byteLength; ) at += writeSync(fd, bytes, at, Math.min(1 << 28, bytes.byteLength - at));
}
