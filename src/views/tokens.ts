/** Token display helpers live in core (analysis matches tokens by the same text); views import them here. */
export { isSpecialToken, prettifyToken, specialMask } from '../core/tokens.js';
