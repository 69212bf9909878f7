/**
 * Builds the `attnviz` command (src/cli/main.ts → dist/src/cli/main.js, the package's bin, and chunks/) as one
 * bundle of attnviz's own modules, dependencies left as imports. Node loads each ES module separately (resolve,
 * read, compile, link): importing the ~65 modules of `extract` took ~95 ms of CPU on a loaded machine, its dozen
 * chunks ~40 (bench/RESULTS.md, start-up). Each command stays a chunk of its own, loaded when it runs, so
 * `extract` still does not load the views, reports or server. The library (dist/src/index.js) stays tsc's modules.
 */
import { chmodSync } from 'node:fs';
import { defineConfig } from 'vite';

export default defineConfig({
  publicDir: false,
  // main.js is the package's bin: executable, as npm makes it on install and `npx attnviz` in a checkout needs.
  plugins: [{ name: 'executable-bin', writeBundle: () => chmodSync('dist/src/cli/main.js', 0o755) }],
  build: {
    ssr: 'src/cli/main.ts',
    outDir: 'dist/src/cli',
    emptyOutDir: true,
    target: 'node20',
    minify: false,
    // Maps for --debug's stack traces (main.ts) and the start-up test (which sources a chunk holds); not packed.
    sourcemap: true,
    rolldownOptions: {
      output: { entryFileNames: 'main.js', chunkFileNames: 'chunks/[name]-[hash].js', comments: false },
    },
  },
});
