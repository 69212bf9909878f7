/** What every view returns: its root element, its state, and exports of the view as shown. */
export interface MountedView {
  readonly element: HTMLElement;
  toSVG(): string;
  toPNG(): Promise<Blob>;
  destroy(): void;
}

/** A view whose state (`S`) can be read and patched; `update` re-renders. */
export interface ViewHandle<S> extends MountedView {
  state(): Readonly<S>;
  update(patch: Partial<S>): void;
}
