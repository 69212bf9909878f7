/**
 * Base 85 text for binary data embedded in HTML: 5 characters per 4 bytes (base64 takes 5.33), so the
 * 12-bit attention encoding costs 1.875 characters per value instead of 2. The alphabet is printable ASCII
 * without `"`, `&`, `'`, `<`, `>`, `\` and `` ` ``, so the text can sit in an attribute or a <script> element
 * (no `</script`) unescaped. Browser-safe.
 */
export const ALPHABET = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i))
  .filter((c) => !`"&'<>\\\`^~`.includes(c))
  .join('');

export function encodeBase85(bytes: Uint8Array): string {
  const codes = new Uint8Array(Math.ceil(bytes.length / 4) * 5);
  const alphabet = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));
  for (let i = 0, o = 0; i < bytes.length; i += 4, o += 5) {
    let v = ((bytes[i] << 24) | ((bytes[i + 1] ?? 0) << 16) | ((bytes[i + 2] ?? 0) << 8) | (bytes[i + 3] ?? 0)) >>> 0;
    for (let k = 4; k >= 0; k--) {
      codes[o + k] = alphabet[v % 85];
      v = Math.floor(v / 85);
    }
  }
  return new TextDecoder().decode(codes);
}

/** Decodes `byteLength` bytes (the encoder pads the last group to 4). */
export function decodeBase85(text: string, byteLength: number): Uint8Array {
  const table = new Uint8Array(128);
  for (let i = 0; i < 85; i++) table[ALPHABET.charCodeAt(i)] = i;
  const out = new Uint8Array(Math.ceil(byteLength / 4) * 4);
  const view = new DataView(out.buffer);
  for (let i = 0, o = 0; o < out.length; i += 5, o += 4) {
    const v =
      (((table[text.charCodeAt(i)] * 85 + table[text.charCodeAt(i + 1)]) * 85 + table[text.charCodeAt(i + 2)]) * 85 +
        table[text.charCodeAt(i + 3)]) *
        85 +
      table[text.charCodeAt(i + 4)];
    view.setUint32(o, v);
  }
  return out.subarray(0, byteLength);
}
