/**
 * RGBA pixels as PNG bytes: RGB when every pixel is opaque (a quarter fewer bytes to compress), no row filter,
 * deflated by Node's zlib at level 4. On the model view's anti-aliased hairlines, row filters made the stream
 * larger (BERT-tiny's model view: 1.05 MB with none, 1.17–1.39 MB with sub, up, Paeth or libpng's adaptive
 * choice), and levels 6 and 9 saved 1–3 % of the bytes for 1.7–4× the time (bench/RESULTS.md).
 *
 * Written here rather than with pngjs or fast-png: a PNG is a signature and three chunks around zlib's output,
 * and pngjs's JavaScript passes (packing RGBA to RGB, the filter copy, its CRC) took ~100 ms of the 500 ms a
 * 12 × 12 × 32 model view may take, fast-png deflates in JavaScript (fflate), slower still.
 */
import { crc32, deflateSync } from 'node:zlib';
import type { RgbaImage } from './hairlines.js';

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
let scratch = Buffer.alloc(0);
const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

export function encodePng(image: RgbaImage): Uint8Array {
  const { width, height, data } = image;
  let opaque = true;
  for (let i = 3; i < data.length && opaque; i += 4) opaque = data[i] === 255;
  const channels = opaque ? 3 : 4;
  // Each row: filter type 0 (none), then its pixels.
  const row = width * channels + 1;
  // Kept between calls: fresh pages cost more to fault in than the packing that fills them.
  if (scratch.length < row * height) scratch = Buffer.alloc(row * height);
  const raw = scratch.subarray(0, row * height);
  // Whole pixels read as words (R in the low byte on a little-endian machine) where the data is aligned to them.
  const words =
    LITTLE_ENDIAN && data.byteOffset % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, width * height) : null;
  for (let y = 0; y < height; y++) {
    let o = y * row;
    raw[o++] = 0;
    if (!opaque) raw.set(data.subarray(y * width * 4, (y + 1) * width * 4), o);
    else if (words)
      for (let i = y * width, end = i + width; i < end; i++) {
        const px = words[i];
        raw[o++] = px & 0xff;
        raw[o++] = (px >>> 8) & 0xff;
        raw[o++] = (px >>> 16) & 0xff;
      }
    else
      for (let i = y * width * 4, end = i + width * 4; i < end; i += 4) {
        raw[o++] = data[i];
        raw[o++] = data[i + 1];
        raw[o++] = data[i + 2];
      }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per channel
  header[9] = opaque ? 2 : 6; // RGB or RGBA; compression, filter method and interlace stay 0
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 4, chunkSize: 1 << 20 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A PNG chunk: length, type, data, CRC-32 of type and data. */
function chunk(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  out.set(body, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}
