/** Builds the reports bundle (dist/reports/attnviz-reports.js) that report HTML (src/export/report.ts) inlines. */
import { defineConfig } from 'vite';

export default defineConfig({
  build: {
    outDir: 'dist/reports',
    emptyOutDir: true,
    minify: true,
    lib: {
      entry: 'src/export/reports/page.ts',
      formats: ['iife'],
      name: 'attnvizReports',
      fileName: () => 'attnviz-reports.js',
    },
  },
});
