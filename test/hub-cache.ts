/** Hugging Face caches laid out on disk exactly as the Python client writes them, for tests. */
import { createHash } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
/** The files a hub download of TinyStories-656K (../shared/models/tinystories-656k) holds. */
export const TINY_FILES = [
  'config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
];

/** The files `names` of folder `dir`, by name: what buildCache lays out. */
export async function readFiles(dir: string, names: readonly string[] = TINY_FILES): Promise<Map<string, Buffer>> {
  return new Map(await Promise.all(names.map(async (f) => [f, await readFile(join(dir, f))] as const)));
}

export const storageOf = (cache: string, repo: string) => join(cache, `models--${repo.replace('/', '--')}`);

/** A cache laid out as huggingface_hub writes it: blobs by sha256, refs/main, relative snapshot symlinks. */
export async function buildCache(
  cache: string,
  repo: string,
  commit: string,
  files: Map<string, Uint8Array>,
): Promise<string> {
  const storage = storageOf(cache, repo);
  const snapshot = join(storage, 'snapshots', commit);
  await mkdir(join(storage, 'blobs'), { recursive: true });
  await mkdir(join(storage, 'refs'), { recursive: true });
  await mkdir(snapshot, { recursive: true });
  for (const [name, data] of files) {
    await writeFile(join(storage, 'blobs', sha256(data)), data);
    await symlink(`../../blobs/${sha256(data)}`, join(snapshot, name));
  }
  await writeFile(join(storage, 'refs', 'main'), commit);
  return snapshot;
}
