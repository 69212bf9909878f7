/**
 * Builds the app (src/app → dist/app): index.html, one hashed script and stylesheet, everything bundled
 * (no CDN), served by the local server (src/server/static.ts).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('./src/app', import.meta.url)),
  base: '/',
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL('./dist/app', import.meta.url)),
    emptyOutDir: true,
    minify: true,
    sourcemap: false,
    target: 'es2022',
  },
});
