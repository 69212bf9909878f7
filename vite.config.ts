/** Builds the standalone views bundle (dist/views/attnviz-views.js) that exported HTML inlines. */
import { defineConfig } from 'vite';

export default defineConfig({
  build: {
    outDir: 'dist/views',
    emptyOutDir: true,
    minify: true,
    lib: {
      entry: 'src/views/standalone.ts',
      formats: ['iife'],
      name: 'attnvizStandalone',
      fileName: () => 'attnviz-views.js',
    },
  },
});
