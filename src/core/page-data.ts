/**
 * The data block of a standalone page, decoded in the browser: base 85 text of the binary encoding
 * (encode.ts), `bytes` long once decoded, deflate-raw compressed when `compression` says so.
 */
import { decodeBase85 } from './base85.js';
import { decodeAttention } from './encode.js';
import type { Attention } from './attention.js';

async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Decodes the text of a data `<script>` (its dataset gives `bytes` and `compression`). */
export async function decodePageData(text: string, dataset: DOMStringMap): Promise<Attention> {
  let bytes = decodeBase85(text.trim(), Number(dataset.bytes));
  if (dataset.compression === 'deflate-raw') bytes = await inflate(bytes);
  return decodeAttention(bytes);
}
