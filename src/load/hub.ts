/**
 * Hub ids → local snapshot folders, in the Hugging Face cache layout the Python client uses, so a model
 * fetched by either client is found by the other:
 *
 *   <cache>/models--{org}--{name}/blobs/<etag>               file contents
 *   <cache>/models--{org}--{name}/refs/<revision>            the commit hash the revision pointed to
 *   <cache>/models--{org}--{name}/snapshots/<commit>/<file>  relative symlink to ../../blobs/<etag>
 *
 * A complete cached snapshot is returned without any network access. Otherwise the files attnviz needs
 * (config, tokenizer, safetensors weights) are fetched with @huggingface/hub's HTTP functions. Its
 * `downloadFileToCacheDir` is not used: given a branch it files each download under the commit that
 * last touched that file instead of the branch's commit, it never writes refs, it logs every download
 * with console.debug (stdout) and it reports no progress. The layout is therefore written here, with the
 * blob names the Python client uses (the LFS sha256, else the git blob id).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { PathInfo } from '@huggingface/hub';
import { AttnvizError, check } from '../core/errors.js';

/** @huggingface/hub (and its hashing WebAssembly) is loaded only when something is downloaded. */
const hubClient = () => import('@huggingface/hub');

export interface HubSource {
  /** `name` or `org/name`. */
  repo: string;
  /** Branch, tag or 40-hex commit hash; 'main' when the id names none. */
  revision: string;
}

export interface ResolveOptions {
  /** Where HF_HUB_CACHE, HF_HOME, HF_HUB_OFFLINE, HF_TOKEN and HF_ENDPOINT are read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Used for every Hub request; default the global fetch. */
  fetch?: typeof fetch;
  /** Download progress on stderr when it is a terminal; default true. */
  progress?: boolean;
}

const CONFIG = 'config.json';
const SINGLE_WEIGHTS = 'model.safetensors';
const WEIGHTS_INDEX = 'model.safetensors.index.json';
/** Fetched when the repo has them; which ones a model uses depends on its tokenizer class. */
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.txt',
  'vocab.json',
  'merges.txt',
];
/** SentencePiece models (sentencepiece.ts), fetched only from a repo without tokenizer.json. */
const SENTENCEPIECE_FILES = [
  'spiece.model',
  'sentencepiece.bpe.model',
  'spm.model',
  'tokenizer.model',
  'source.spm',
  'target.spm',
];

const COMMIT_HASH = /^[0-9a-f]{40}$/;
/** A repo id part, as the Hub's own validator has it: word characters, '-' and '.', not at either end. */
const ID_PART = /^\w(?:[\w.-]*\w)?$/;
/** Revisions become paths under refs/, so each '/'-separated part must be a plain name. */
const REVISION = /^[\w-][\w.-]*(?:\/[\w-][\w.-]*)*$/;

/**
 * 'name', 'org/name' or either followed by '@revision'. Null for anything that cannot be a hub id (paths such
 * as './x', '/abs' or 'a/b/c'); callers should still prefer an existing local folder of the same name.
 */
export function parseHubId(id: string): HubSource | null {
  const at = id.indexOf('@');
  const repo = at < 0 ? id : id.slice(0, at);
  const revision = at < 0 ? 'main' : id.slice(at + 1);
  const parts = repo.split('/');
  const name = parts[parts.length - 1];
  const valid =
    parts.length <= 2 &&
    parts.every((p) => ID_PART.test(p)) &&
    name.length <= 96 &&
    !repo.includes('--') &&
    !repo.includes('..') &&
    REVISION.test(revision) &&
    !revision.includes('..');
  return valid ? { repo, revision } : null;
}

/** The hub cache folder, resolved as huggingface_hub does (HF_HUB_CACHE > HF_HOME/hub > ~/.cache/huggingface/hub). */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const hfHome =
    expandHome(env.HF_HOME) ?? join(expandHome(env.XDG_CACHE_HOME) ?? join(homedir(), '.cache'), 'huggingface');
  // HUGGINGFACE_HUB_CACHE is the legacy name that huggingface_hub still honours.
  return resolve(expandHome(env.HF_HUB_CACHE) ?? expandHome(env.HUGGINGFACE_HUB_CACHE) ?? join(hfHome, 'hub'));
}

/** The absolute snapshot folder for a hub id, downloaded into the cache first unless it is already there. */
export async function resolveHubModel(id: string, options: ResolveOptions = {}): Promise<string> {
  const source = parseHubId(id);
  check(source, `"${id}" is not a Hugging Face Hub model id (expected name, org/name or org/name@revision)`);
  const env = options.env ?? process.env;
  const cache = hubCacheDir(env);
  const storage = join(cache, `models--${source.repo.replace('/', '--')}`);

  const cached = await cachedSnapshot(storage, source.revision);
  if (cached) return cached;
  check(
    !isTrue(env.HF_HUB_OFFLINE),
    `model "${id}" is not in the Hugging Face cache at ${cache} and HF_HUB_OFFLINE is set`,
  );

  const hub: Hub = {
    id,
    repo: source.repo,
    storage,
    // Same variables as the Python client: a mirror endpoint and a token for gated or private repos.
    hubUrl: env.HF_ENDPOINT?.replace(/\/+$/, '') || undefined,
    accessToken: env.HF_TOKEN || undefined,
    fetch: options.fetch,
    showProgress: options.progress !== false && process.stderr.isTTY === true,
  };
  try {
    return await download(hub, source.revision);
  } catch (e) {
    if (e instanceof AttnvizError) throw e;
    throw new AttnvizError(
      `cannot download model "${id}" from the Hugging Face Hub (${describe(e)}); check the id and the network, ` +
        'or set HF_HUB_OFFLINE=1 to use only the cache, or pass a local model folder',
      { cause: e },
    );
  }
}

/** huggingface_hub's reading of boolean variables. */
function isTrue(value: string | undefined): boolean {
  return ['1', 'true', 'yes', 'on'].includes((value ?? '').trim().toLowerCase());
}

function expandHome(path: string | undefined): string | undefined {
  if (!path) return undefined;
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/** The snapshot `revision` names, if the cache holds all of it; never touches the network. */
async function cachedSnapshot(storage: string, revision: string): Promise<string | null> {
  const commit = COMMIT_HASH.test(revision)
    ? revision
    : (await readFile(join(storage, 'refs', revision), 'utf8').catch(() => '')).trim();
  if (!COMMIT_HASH.test(commit)) return null;
  const dir = join(storage, 'snapshots', commit);
  if (!(await isFile(join(dir, CONFIG)))) return null;
  if (await isFile(join(dir, SINGLE_WEIGHTS))) return dir;
  // A broken index here only means "not cached": the download path re-reads it and reports the problem.
  const shards = await shardNames(join(dir, WEIGHTS_INDEX)).catch(() => null);
  if (!shards) return null;
  const present = await Promise.all(shards.map((s) => isFile(join(dir, s))));
  return present.every(Boolean) ? dir : null;
}

/** True for a file or a symlink to one; a dangling symlink (blob deleted) does not count. */
async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** The distinct shard file names a safetensors index lists. */
async function shardNames(indexPath: string): Promise<string[]> {
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map?: unknown };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e;
    throw new AttnvizError(`${indexPath} is not valid JSON (${describe(e)})`);
  }
  const map = index?.weight_map;
  check(map !== null && typeof map === 'object', `${indexPath} has no weight_map`);
  const shards = [...new Set(Object.values(map))];
  // Shard names are joined onto the snapshot folder, so anything but a plain file name is refused.
  const plain = (s: unknown): s is string => typeof s === 'string' && /^[^/\\]+$/.test(s) && s !== '.' && s !== '..';
  check(
    shards.length > 0 && shards.every(plain),
    `${indexPath} lists no shards, or shard names that are not plain file names`,
  );
  return shards;
}

/** Everything a download needs, passed explicitly instead of living in module state. */
interface Hub {
  id: string;
  repo: string;
  storage: string;
  hubUrl: string | undefined;
  accessToken: string | undefined;
  fetch: typeof fetch | undefined;
  showProgress: boolean;
}

async function download(hub: Hub, revision: string): Promise<string> {
  const { modelInfo, pathsInfo } = await hubClient();
  const http = { hubUrl: hub.hubUrl, accessToken: hub.accessToken, fetch: hub.fetch };
  // Files are fetched at the commit, not the branch, so a push during the download cannot mix two commits.
  const commit = COMMIT_HASH.test(revision)
    ? revision
    : (await modelInfo({ ...http, name: hub.repo, revision, additionalFields: ['sha'] })).sha;
  // The commit becomes a folder name, so whatever the endpoint answers must look like one.
  if (!COMMIT_HASH.test(commit))
    throw new Error(`the Hub resolved revision "${revision}" to "${commit}", which is not a commit hash`);
  const filesAt = async (paths: string[]) => {
    const infos = await pathsInfo({ ...http, repo: hub.repo, revision: commit, paths });
    return new Map(infos.filter((f) => f.type === 'file').map((f) => [f.path, f]));
  };

  const found = await filesAt([CONFIG, ...TOKENIZER_FILES, ...SENTENCEPIECE_FILES, SINGLE_WEIGHTS, WEIGHTS_INDEX]);
  check(found.has(CONFIG), `model "${hub.id}" has no ${CONFIG} on the Hugging Face Hub`);
  const sharded = !found.has(SINGLE_WEIGHTS);
  check(
    !sharded || found.has(WEIGHTS_INDEX),
    `model "${hub.id}" has no ${SINGLE_WEIGHTS} or ${WEIGHTS_INDEX} on the Hugging Face Hub; ` +
      `only safetensors weights are supported`,
  );

  const snapshot = join(hub.storage, 'snapshots', commit);
  const wanted = [
    CONFIG,
    ...TOKENIZER_FILES,
    ...(found.has('tokenizer.json') ? [] : SENTENCEPIECE_FILES),
    sharded ? WEIGHTS_INDEX : SINGLE_WEIGHTS,
  ];
  for (const name of wanted) {
    const info = found.get(name);
    if (info) await downloadToCache(hub, commit, info);
  }
  if (sharded) {
    const shards = await shardNames(join(snapshot, WEIGHTS_INDEX));
    const shardInfos = await filesAt(shards);
    for (const shard of shards) {
      const info = shardInfos.get(shard);
      check(info, `model "${hub.id}": ${WEIGHTS_INDEX} lists ${shard}, which is not in the repo`);
      await downloadToCache(hub, commit, info);
    }
  }
  // Written last, so a ref only ever moves to a complete snapshot; like Python, none for a commit hash.
  if (revision !== commit) {
    const ref = join(hub.storage, 'refs', revision);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, commit);
  }
  return snapshot;
}

/** Puts one file into blobs/ (unless a blob with its hash is already there) and links it from the snapshot. */
async function downloadToCache(hub: Hub, commit: string, info: PathInfo): Promise<void> {
  // The names huggingface_hub gives blobs: the ETag the Hub serves, i.e. the LFS sha256 or the git blob id.
  const etag = info.lfs?.oid ?? info.oid;
  if (!etag || !/^[0-9a-f]+$/.test(etag)) throw new Error(`the Hub gave no usable hash for ${info.path}`);
  const blobPath = join(hub.storage, 'blobs', etag);
  if (!(await isFile(blobPath))) {
    await mkdir(dirname(blobPath), { recursive: true });
    const blob = await (await hubClient()).downloadFile({
      repo: hub.repo,
      path: info.path,
      revision: commit,
      hubUrl: hub.hubUrl,
      accessToken: hub.accessToken,
      fetch: hub.fetch,
    });
    if (!blob) throw new Error(`${info.path} is listed by the Hub but cannot be downloaded`);
    // Written beside the blob and renamed into place, so an interrupted download never looks complete;
    // the pid keeps two concurrent attnviz processes from writing the same partial file.
    const partial = `${blobPath}.${process.pid}.incomplete`;
    try {
      const written = await writeWithProgress(blob, partial, `${hub.repo} ${info.path}`, hub.showProgress);
      if (written !== info.size) throw new Error(`${info.path} arrived with ${written} bytes instead of ${info.size}`);
      await rename(partial, blobPath);
    } catch (e) {
      await rm(partial, { force: true });
      throw e;
    }
  }
  const pointer = join(hub.storage, 'snapshots', commit, info.path);
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  await symlink(relative(dirname(pointer), blobPath), pointer);
}

/** Streams `blob` to `path`, drawing a `\r` progress line on stderr when asked; returns the bytes written. */
async function writeWithProgress(blob: Blob, path: string, label: string, show: boolean): Promise<number> {
  let done = 0;
  let drawnAt = 0;
  const draw = (final: boolean) => {
    if (!show || (!final && Date.now() - drawnAt < 100)) return;
    drawnAt = Date.now();
    process.stderr.write(`\r${label}  ${formatBytes(done)} / ${formatBytes(blob.size)}\x1b[K${final ? '\n' : ''}`);
  };
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      done += chunk.length;
      draw(false);
      callback(null, chunk);
    },
  });
  draw(false);
  // The DOM and node:stream/web ReadableStream types differ only nominally; the object is the same.
  await pipeline(Readable.fromWeb(blob.stream() as unknown as NodeReadableStream), counter, createWriteStream(path));
  draw(true);
  return done;
}

function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  const [value, unit] = n < 1e6 ? [n / 1e3, 'kB'] : n < 1e9 ? [n / 1e6, 'MB'] : [n / 1e9, 'GB'];
  return `${value.toFixed(1)} ${unit}`;
}

/** Plain words for the network errors fetch reports in its `cause` (Node's errno codes). */
const NETWORK_REASONS: Record<string, string> = {
  ENOTFOUND: 'not found: no network, or no name server',
  EAI_AGAIN: 'not found for now: the name server did not answer',
  ECONNREFUSED: 'refused the connection',
  ECONNRESET: 'closed the connection',
  ETIMEDOUT: 'did not answer in time',
  ENETUNREACH: 'cannot be reached: no network',
  EHOSTUNREACH: 'cannot be reached',
};

/**
 * One line from an error and its causes. fetch hides the real reason in `cause`: a network error with a known
 * code is said in words with its host; others are their messages, joined.
 */
function describe(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e; c !== undefined && parts.length < 3; c = c instanceof Error ? c.cause : undefined) {
    const { code, hostname, address } = c as { code?: string; hostname?: string; address?: string };
    if (code && NETWORK_REASONS[code]) return `${hostname ?? address ?? 'the Hub'} ${NETWORK_REASONS[code]}`;
    parts.push(c instanceof Error ? c.message || String(code ?? c.name) : String(c));
  }
  return parts.join(': ').replace(/\s+/g, ' ').trim();
}
