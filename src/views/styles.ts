/** The views' CSS, scoped under `.attnviz` and injected into each view's root (no global stylesheet). */
import type { Theme } from './palette.js';
import { FONT } from './painter.js';

export function css(t: Theme): string {
  return `
.attnviz{font-family:${FONT};color:${t.text};background:${t.background};padding:8px;position:relative;\
box-sizing:border-box}
.attnviz *{box-sizing:border-box}
.attnviz [hidden]{display:none!important}
.attnviz .av-group{display:contents}
.attnviz .av-controls{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin-bottom:8px;font-size:13px}
.attnviz .av-control{color:${t.text}}
.attnviz select,.attnviz input,.attnviz .av-button{font:inherit;font-size:13px;color:${t.text};\
background:${t.background};border:1px solid ${t.border};border-radius:3px}
.attnviz input[type=number]{width:5em}
.attnviz .av-button{cursor:pointer;padding:1px 8px}
.attnviz .av-heads{display:flex;flex-wrap:wrap;margin-bottom:6px}
.attnviz .av-head{width:20px;height:20px;border:0;padding:0;margin:0;cursor:pointer}
.attnviz .av-body{position:relative}
.attnviz .av-heatmap{position:relative;touch-action:none;user-select:none}
.attnviz .av-heatmap-canvas{cursor:grab}
.attnviz .av-minimap{z-index:2;border:1px solid ${t.border};cursor:crosshair}
.attnviz canvas{position:absolute;left:0;top:0}
.attnviz .av-token{position:absolute;height:22.5px;line-height:22.5px;font-size:15px;white-space:pre;overflow:hidden;\
text-overflow:ellipsis;cursor:pointer;user-select:none;padding:0 3px}
.attnviz .av-token.av-focus{background:${t.highlight}}
.attnviz .av-token.av-pinned{outline:1px solid ${t.mutedText}}
.attnviz .av-token.av-generated{font-style:italic}
.attnviz .av-token.av-generated-first{border-top:1px dashed ${t.mutedText}}
.attnviz .av-tooltip{position:absolute;z-index:10;pointer-events:none;background:${t.background};color:${t.text};\
border:1px solid ${t.border};padding:4px 6px;font-size:12px;white-space:pre;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.attnviz .av-note{color:${t.mutedText};font-size:13px;margin:4px 0}
`;
}
