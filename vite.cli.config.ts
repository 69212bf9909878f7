/**
 * Builds the `attnviz` command (src/cli/main.ts → dist/src/cli/main.js, the package's bin, and chunks/) as one
 * bundle of attnviz's own modules, dependencies left as imports. Node loads each ES module separately (resolve,
 * read, compile, link): the ~65 modules `extract` imported cost its start ~60–90 ms of CPU, a dozen chunks a third
 * of that (bench/RESULTS.md, start-up). Each command stays a chunk of its own, loaded when it runs, so `extract`
 * still does not load the views, reports or server. The library (dist/src/index.js) remains tsc's modules.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  publicDir: false,
  build: {
    ssr: 'src/cli/main.ts',
    outDir: 'dist/src/cli',
    emptyOutDir: true,
    target: 'node20',
    minify: false,
    // Maps for `node --enable-source-maps` and the start-up test (which sources a chunk holds); not packed.
    sourcemap: true,
    rolldownOptions: {
      output: { entryFileNames: 'main.js', chunkFileNames: 'chunks/[name]-[hash].js', comments: false },
    },
  },
});
