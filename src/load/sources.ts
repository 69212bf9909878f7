/** Where a model source string points: a local folder, or a hub id resolved through the Hugging Face cache. */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { AttnvizError, check } from '../core/errors.js';
import { parseHubId, resolveHubModel, type ResolveOptions } from './hub.js';

/** A local folder if one exists at `source`, else a hub id resolved through the Hugging Face cache. */
export async function resolveSource(source: string, options: ResolveOptions): Promise<string> {
  check(source.trim() !== '', 'no model given');
  const local = resolve(source);
  if (existsSync(local)) {
    check(
      statSync(local).isDirectory(),
      `${source}: not a folder (a model is a Hugging Face folder with config.json, or a hub id)`,
    );
    return local;
  }
  if (!parseHubId(source))
    throw new AttnvizError(`${source}: no such folder, and not a hub id (org/name or org/name@revision)`);
  return resolveHubModel(source, options);
}
