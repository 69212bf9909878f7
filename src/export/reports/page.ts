/**
 * Entry point of the reports bundle (dist/reports/attnviz-reports.js) inlined into report HTML
 * (export/report.ts): reads the report JSON and the attention data blocks, then draws the report of its kind.
 * A report that cannot be shown says why in the page (`.attnviz-error`).
 */
import type { Attention } from '../../core/attention.js';
import { decodePageData } from '../../core/page-data.js';
import { el } from '../../views/dom.js';
import type { ReportData } from '../../analysis/report-data.js';
import { comparePage } from '../../views/reports/compare-page.js';
import { headsPage } from '../../views/reports/heads-page.js';
import { stepsPage } from '../../views/reports/steps-page.js';
import { REPORT_CSS } from '../../views/reports/widgets.js';

async function boot(): Promise<void> {
  const root = document.getElementById('attnviz-report-root')!;
  root.className = 'attnviz-report';
  document.head.append(el('style', { text: REPORT_CSS }));
  try {
    const report = JSON.parse(document.getElementById('attnviz-report')!.textContent!) as ReportData;
    const data = new Map<string, Attention>();
    for (const script of document.querySelectorAll<HTMLScriptElement>('script[type="application/x-attnviz-data"]'))
      data.set(script.dataset.name!, await decodePageData(script.textContent!, script.dataset));
    if (report.kind === 'compare') comparePage(root, report, data);
    else if (report.kind === 'heads') headsPage(root, report, data);
    else if (report.kind === 'steps') stepsPage(root, report, data);
    else throw new Error(`unknown report kind "${(report as { kind: string }).kind}"`);
    root.dataset.ready = 'true';
  } catch (e) {
    root.append(
      el('p', { class: 'attnviz-error', text: `attnviz: cannot show this report (${(e as Error).message})` }),
    );
  }
}

void boot();
