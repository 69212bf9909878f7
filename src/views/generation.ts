/**
 * The mark of generated text, shared by the token labels of every view: the labels of generated tokens (index
 * ≥ the Attention's `promptLength`) in italics, and a dashed rule above the first of them, between prompt and
 * continuation. Styled in styles.ts; no mark where there is no `promptLength` (a text that was not generated).
 */

/** Classes for token `i`: '' for a prompt token or ungenerated text; starts with a space otherwise. */
export function generationClass(promptLength: number | undefined, i: number): string {
  if (promptLength === undefined || i < promptLength) return '';
  return i === promptLength ? ' av-generated av-generated-first' : ' av-generated';
}
