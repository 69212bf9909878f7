/**
 * Which sources are ONNX models, decided without loading onnx-tap.ts (and onnx-proto, its ONNX schema): the
 * engine imports this small module statically and models/onnx-tap.ts only when a source is one.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Whether `source` is an ONNX model: an existing `.onnx` file, or a folder with an `onnx/` folder and no
 * safetensors checkpoint (a folder with both loads its checkpoint; pass the .onnx file to load the graph).
 */
export function isOnnxSource(source: string | undefined): boolean {
  if (!source) return false;
  const path = resolve(source);
  if (!existsSync(path)) return false;
  const s = statSync(path);
  if (s.isFile()) return /\.onnx$/i.test(path);
  return (
    s.isDirectory() &&
    isDir(join(path, 'onnx')) &&
    !existsSync(join(path, 'model.safetensors')) &&
    !existsSync(join(path, 'model.safetensors.index.json'))
  );
}

export function isDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}
