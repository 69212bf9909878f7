import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCache, readFiles, sha256, storageOf } from './hub-cache.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AttnvizError } from '../src/core/errors.js';
import { hubCacheDir, parseHubId, resolveHubModel } from '../src/load/hub.js';
import { present, SHARED } from './shared.js';

const tinyDir = join(SHARED, 'models', 'tinystories-656k');
const haveTiny = present(existsSync(tinyDir), tinyDir, 'the TinyStories cache tests');

const TINY = 'raincandy-u/TinyStories-656K';
const COMMIT = `${'a'.repeat(8)}0123456789abcdef0123456789abcdef`;
const OTHER_COMMIT = 'b'.repeat(40);

/** The id git (and so the Hub, for non-LFS files) gives a file's contents. */
const gitBlobId = (data: Uint8Array) => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');

const readTiny = () => readFiles(tinyDir);

interface Call {
  method: string;
  url: string;
  auth: string | null;
}

/**
 * Just enough of the Hub's HTTP API for @huggingface/hub's modelInfo, pathsInfo and downloadFile:
 * `GET /api/models/{repo}/revision/{rev}` (the commit as `sha`), `POST /api/models/{repo}/paths-info/{commit}`
 * (existing paths only; LFS files carry `lfs.oid` = sha256), and `GET /{repo}/resolve/{commit}/{file}`, first
 * probed with `Range: bytes=0-0` (206 + Content-Range with the size), then fetched whole. `*.safetensors` are LFS.
 */
function fakeHub(
  repo: string,
  commit: string,
  files: Map<string, Uint8Array>,
  opts: { endpoint?: string; sizeSkew?: number } = {},
) {
  const endpoint = opts.endpoint ?? 'https://huggingface.co';
  const calls: Call[] = [];
  const isLfs = (name: string) => name.endsWith('.safetensors');
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  const fetchImpl = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? 'GET';
    const headers = new Headers(init?.headers);
    calls.push({ method, url: url.href, auth: headers.get('Authorization') });
    const api = `${endpoint}/api/models/${repo}/`;
    const resolve = `${endpoint}/${repo}/resolve/${commit}/`;
    const href = url.origin + url.pathname;
    if (method === 'GET' && href.startsWith(`${api}revision/`)) {
      const rev = decodeURIComponent(href.slice(`${api}revision/`.length));
      if (rev !== 'main' && rev !== commit) return json({ error: `Invalid rev id: ${rev}` }, 404);
      return json({
        _id: '1',
        id: repo,
        sha: commit,
        private: false,
        gated: false,
        downloads: 0,
        likes: 0,
        lastModified: '2024-01-01T00:00:00.000Z',
      });
    }
    if (method === 'POST' && href === `${api}paths-info/${commit}`) {
      const { paths } = JSON.parse(String(init?.body)) as { paths: string[] };
      return json(
        paths.flatMap((path) => {
          const data = files.get(path);
          if (!data) return [];
          const size = data.length + (opts.sizeSkew ?? 0);
          return [
            {
              type: 'file',
              path,
              size,
              oid: gitBlobId(data),
              ...(isLfs(path) && { lfs: { oid: sha256(data), size, pointerSize: 134 } }),
            },
          ];
        }),
      );
    }
    if (method === 'GET' && href.startsWith(resolve)) {
      const name = decodeURIComponent(href.slice(resolve.length));
      const data = files.get(name);
      if (!data) return new Response('Entry not found', { status: 404, headers: { 'X-Error-Code': 'EntryNotFound' } });
      const common = {
        ETag: `"${gitBlobId(data)}"`,
        'X-Repo-Commit': commit,
        ...(isLfs(name) && { 'X-Linked-ETag': `"${sha256(data)}"` }),
      };
      if (headers.get('Range') === 'bytes=0-0') {
        return new Response(data.slice(0, 1), {
          status: 206,
          headers: { ...common, 'Content-Range': `bytes 0-0/${data.length}`, 'Content-Length': '1' },
        });
      }
      return new Response(data.slice(), { status: 200, headers: { ...common, 'Content-Length': String(data.length) } });
    }
    return json({ error: 'Repository not found' }, 404);
  };
  return { fetch: vi.fn(fetchImpl) as unknown as typeof fetch, calls };
}

/** A fetch that fails the test if anything calls it. */
const noNetwork = () =>
  vi.fn<typeof fetch>(async () => {
    throw new Error('the network was used');
  });

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'attnviz-hub-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('parseHubId', () => {
  it('reads names, org/name and @revision', () => {
    expect(parseHubId('bert-base-uncased')).toEqual({ repo: 'bert-base-uncased', revision: 'main' });
    expect(parseHubId('openai-community/gpt2')).toEqual({ repo: 'openai-community/gpt2', revision: 'main' });
    expect(parseHubId('org/name@v1.0')).toEqual({ repo: 'org/name', revision: 'v1.0' });
    expect(parseHubId('org/name@refs/pr/1')).toEqual({ repo: 'org/name', revision: 'refs/pr/1' });
    expect(parseHubId(`org/name@${COMMIT}`)).toEqual({ repo: 'org/name', revision: COMMIT });
    expect(parseHubId('Qwen/Qwen2.5-0.5B_x')).toEqual({ repo: 'Qwen/Qwen2.5-0.5B_x', revision: 'main' });
  });

  it.each([
    './x',
    '/abs',
    'a/b/c',
    '../x',
    '.',
    '..',
    '',
    'org/',
    '/name',
    '~/models',
    'C:\\models\\x',
    'a--b/c',
    'a/b..c',
    'org/-name',
    'org/name.',
    'org/name@',
    'org/name@../x',
    'org/name@/abs',
    'org/name@a/../b',
    'org/name@a@b',
    'x'.repeat(97),
  ])('rejects %j', (id) => {
    expect(parseHubId(id)).toBeNull();
  });
});

describe('hubCacheDir', () => {
  it(
    'prefers HF_HUB_CACHE, then HF_HOME/hub, then ' + 'XDG_CACHE_HOME/huggingface/hub, then ~/.cache/huggingface/hub',
    () => {
      expect(hubCacheDir({ HF_HUB_CACHE: '/c/hub', HF_HOME: '/h' })).toBe('/c/hub');
      expect(hubCacheDir({ HF_HOME: '/h', XDG_CACHE_HOME: '/x' })).toBe('/h/hub');
      expect(hubCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/huggingface/hub');
      expect(hubCacheDir({})).toBe(join(homedir(), '.cache', 'huggingface', 'hub'));
    },
  );

  it('honours the legacy HUGGINGFACE_HUB_CACHE, expands ~ and returns absolute paths', () => {
    expect(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/legacy' })).toBe('/legacy');
    expect(hubCacheDir({ HF_HOME: '~/hf' })).toBe(join(homedir(), 'hf', 'hub'));
    expect(hubCacheDir({ HF_HUB_CACHE: 'rel' })).toBe(join(process.cwd(), 'rel'));
  });
});

describe.skipIf(!haveTiny)('resolveHubModel from a cache built by the Python layout', () => {
  it('returns the refs/main snapshot, by default, by @main and by commit, without touching the network', async () => {
    const snapshot = await buildCache(tmp, TINY, COMMIT, await readTiny());
    const fetch = noNetwork();
    const env = { HF_HUB_CACHE: tmp };
    for (const id of [TINY, `${TINY}@main`, `${TINY}@${COMMIT}`]) {
      const dir = await resolveHubModel(id, { env, fetch });
      expect(dir).toBe(snapshot);
      expect(await readFile(join(dir, 'config.json'), 'utf8')).toBe(
        await readFile(join(tinyDir, 'config.json'), 'utf8'),
      );
    }
    expect(fetch).not.toHaveBeenCalled();
  });

  it('finds the cache through HF_HOME and serves it offline', async () => {
    const snapshot = await buildCache(join(tmp, 'hub'), TINY, COMMIT, await readTiny());
    expect(await resolveHubModel(TINY, { env: { HF_HOME: tmp, HF_HUB_OFFLINE: '1' }, fetch: noNetwork() })).toBe(
      snapshot,
    );
  });

  it('does not count a snapshot whose weight blob is gone', async () => {
    await buildCache(tmp, TINY, COMMIT, await readTiny());
    await rm(join(storageOf(tmp, TINY), 'blobs', sha256(await readFile(join(tinyDir, 'model.safetensors')))));
    await expect(resolveHubModel(TINY, { env: { HF_HUB_CACHE: tmp, HF_HUB_OFFLINE: '1' } })).rejects.toThrow(
      /is not in the Hugging Face cache/,
    );
  });
});

describe('resolveHubModel with sharded weights in the cache', () => {
  const index = (shards: string[]) =>
    Buffer.from(JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(shards.map((s, i) => [`w${i}`, s])) }));
  const shardFiles = () =>
    new Map<string, Uint8Array>([
      ['config.json', Buffer.from('{}')],
      [
        'model.safetensors.index.json',
        index([
          'model-00001-of-00002.safetensors',
          'model-00002-of-00002.safetensors',
          'model-00001-of-00002.safetensors',
        ]),
      ],
      ['model-00001-of-00002.safetensors', Buffer.from('one')],
      ['model-00002-of-00002.safetensors', Buffer.from('two')],
    ]);

  it('counts it as cached when every listed shard is there', async () => {
    const snapshot = await buildCache(tmp, 'org/sharded', COMMIT, shardFiles());
    expect(await resolveHubModel('org/sharded', { env: { HF_HUB_CACHE: tmp, HF_HUB_OFFLINE: '1' } })).toBe(snapshot);
  });

  it('does not when a shard is missing', async () => {
    const files = shardFiles();
    files.delete('model-00002-of-00002.safetensors');
    await buildCache(tmp, 'org/sharded', COMMIT, files);
    await expect(resolveHubModel('org/sharded', { env: { HF_HUB_CACHE: tmp, HF_HUB_OFFLINE: '1' } })).rejects.toThrow(
      AttnvizError,
    );
  });

  it('downloads the index and then every shard it lists', async () => {
    const files = shardFiles();
    const hub = fakeHub('org/sharded', COMMIT, files);
    const dir = await resolveHubModel('org/sharded', { env: { HF_HUB_CACHE: tmp }, fetch: hub.fetch, progress: false });
    expect((await readdir(dir)).sort()).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    expect(await readFile(join(dir, 'model-00002-of-00002.safetensors'), 'utf8')).toBe('two');
  });

  it('refuses an index that lists a shard the repo does not have', async () => {
    const files = shardFiles();
    files.delete('model-00002-of-00002.safetensors');
    const hub = fakeHub('org/sharded', COMMIT, files);
    await expect(
      resolveHubModel('org/sharded', { env: { HF_HUB_CACHE: tmp }, fetch: hub.fetch, progress: false }),
    ).rejects.toThrow(/lists model-00002-of-00002\.safetensors, which is not in the repo/);
  });
});

describe('resolveHubModel offline', () => {
  it.each(['1', 'TRUE', 'Yes', 'on'])(
    'HF_HUB_OFFLINE=%s without a cached copy is a one-line error naming id and cache',
    async (value) => {
      const fetch = noNetwork();
      const error = await resolveHubModel('org/name', {
        env: { HF_HUB_CACHE: tmp, HF_HUB_OFFLINE: value },
        fetch,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AttnvizError);
      expect((error as Error).message).toBe(
        `model "org/name" is not in the Hugging Face cache at ${tmp} and HF_HUB_OFFLINE is set`,
      );
      expect(fetch).not.toHaveBeenCalled();
    },
  );

  it('HF_HUB_OFFLINE=0 still goes online', async () => {
    const fetch = noNetwork();
    await expect(
      resolveHubModel('org/name', { env: { HF_HUB_CACHE: tmp, HF_HUB_OFFLINE: '0' }, fetch }),
    ).rejects.toThrow(/cannot download/);
    expect(fetch).toHaveBeenCalled();
  });

  it('rejects an id that cannot be a hub id', async () => {
    await expect(resolveHubModel('./x', { env: { HF_HUB_CACHE: tmp } })).rejects.toThrow(
      /"\.\/x" is not a Hugging Face Hub model id/,
    );
  });
});

describe.skipIf(!haveTiny)('resolveHubModel downloading from a fake Hub', () => {
  it(
    'lays files out as blobs + refs + relative snapshot ' + 'symlinks, then serves the cache without fetching',
    async () => {
      const tiny = await readTiny();
      const hub = fakeHub(TINY, COMMIT, tiny);
      const env = { HF_HUB_CACHE: tmp };
      const dir = await resolveHubModel(TINY, { env, fetch: hub.fetch, progress: false });
      const storage = storageOf(tmp, TINY);
      expect(dir).toBe(join(storage, 'snapshots', COMMIT));
      expect(await readFile(join(storage, 'refs', 'main'), 'utf8')).toBe(COMMIT);
      // generation_config.json is not something attnviz needs.
      expect((await readdir(dir)).sort()).toEqual([
        'config.json',
        'model.safetensors',
        'special_tokens_map.json',
        'tokenizer.json',
        'tokenizer_config.json',
      ]);
      for (const name of await readdir(dir)) {
        const data = tiny.get(name)!;
        // Blob names as huggingface_hub gives them: LFS files by sha256, the rest by git blob id.
        const etag = name.endsWith('.safetensors') ? sha256(data) : gitBlobId(data);
        expect((await lstat(join(dir, name))).isSymbolicLink()).toBe(true);
        expect(await readlink(join(dir, name))).toBe(`../../blobs/${etag}`);
        expect(Buffer.compare(await readFile(join(storage, 'blobs', etag)), data)).toBe(0);
      }
      expect((await readdir(join(storage, 'blobs'))).filter((f) => f.endsWith('.incomplete'))).toEqual([]);

      const fetch = noNetwork();
      expect(await resolveHubModel(TINY, { env, fetch })).toBe(dir);
      expect(fetch).not.toHaveBeenCalled();
    },
  );

  it('downloads a commit hash without asking for the branch and without writing a ref', async () => {
    const hub = fakeHub(TINY, COMMIT, await readTiny());
    const dir = await resolveHubModel(`${TINY}@${COMMIT}`, {
      env: { HF_HUB_CACHE: tmp },
      fetch: hub.fetch,
      progress: false,
    });
    expect(dir).toBe(join(storageOf(tmp, TINY), 'snapshots', COMMIT));
    expect(existsSync(join(storageOf(tmp, TINY), 'refs'))).toBe(false);
    expect(hub.calls.some((c) => c.url.includes('/revision/'))).toBe(false);
  });

  it('completes a partly cached snapshot and moves refs/main to the new commit', async () => {
    const tiny = await readTiny();
    await buildCache(tmp, TINY, OTHER_COMMIT, new Map([['config.json', tiny.get('config.json')!]]));
    const hub = fakeHub(TINY, COMMIT, tiny);
    const dir = await resolveHubModel(TINY, { env: { HF_HUB_CACHE: tmp }, fetch: hub.fetch, progress: false });
    expect(dir).toBe(join(storageOf(tmp, TINY), 'snapshots', COMMIT));
    expect(await readFile(join(storageOf(tmp, TINY), 'refs', 'main'), 'utf8')).toBe(COMMIT);
  });

  it('uses HF_ENDPOINT and sends HF_TOKEN', async () => {
    const hub = fakeHub(TINY, COMMIT, await readTiny(), { endpoint: 'https://mirror.example' });
    const env = { HF_HUB_CACHE: tmp, HF_ENDPOINT: 'https://mirror.example/', HF_TOKEN: 'hf_test' };
    await resolveHubModel(TINY, { env, fetch: hub.fetch, progress: false });
    expect(hub.calls.length).toBeGreaterThan(0);
    for (const call of hub.calls) {
      expect(call.url.startsWith('https://mirror.example/')).toBe(true);
      expect(call.auth).toBe('Bearer hf_test');
    }
  });

  describe('progress', () => {
    const isTTY = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
    afterEach(() => {
      vi.restoreAllMocks();
      if (isTTY) Object.defineProperty(process.stderr, 'isTTY', isTTY);
      else delete (process.stderr as { isTTY?: boolean }).isTTY;
    });

    const run = async (progress: boolean | undefined) => {
      Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
      const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      await resolveHubModel(TINY, {
        env: { HF_HUB_CACHE: tmp },
        fetch: fakeHub(TINY, COMMIT, await readTiny()).fetch,
        progress,
      });
      return write.mock.calls
        .map((c) => String(c[0]))
        .filter((s) => s.startsWith('\r'))
        .join('');
    };

    it('draws bytes done / total per file on a terminal', async () => {
      const out = await run(undefined);
      expect(out).toContain(`${TINY} model.safetensors  2.6 MB / 2.6 MB\x1b[K\n`);
      expect(out).toContain(`${TINY} config.json  649 B / 649 B\x1b[K\n`);
    });

    it('stays quiet with progress: false', async () => {
      expect(await run(false)).toBe('');
    });
  });
});

describe('resolveHubModel download errors', () => {
  it('names the id, the cause and the ways out when the network fails', async () => {
    const unreachable = vi.fn<typeof fetch>(async () => {
      // What Node's fetch throws when the name does not resolve.
      const cause = Object.assign(new Error('getaddrinfo ENOTFOUND huggingface.co'), {
        code: 'ENOTFOUND',
        syscall: 'getaddrinfo',
        hostname: 'huggingface.co',
      });
      throw new TypeError('fetch failed', { cause });
    });
    const error = await resolveHubModel('org/name', {
      env: { HF_HUB_CACHE: tmp },
      fetch: unreachable,
      progress: false,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AttnvizError);
    const message = (error as Error).message;
    expect(message).toMatch(
      new RegExp(
        /^cannot download model "org\/name" from the Hugging Face Hub /.source +
          /\(huggingface\.co not found: no network, or no name server\)/.source,
      ),
    );
    expect(message).toContain('HF_HUB_OFFLINE=1');
    expect(message).toContain('local model folder');
    expect(message).not.toContain('\n');
    expect(message).not.toMatch(/\bE[A-Z_]{3,}\b/);
  });

  it('passes on what the Hub says about an unknown repo', async () => {
    const hub = fakeHub('org/other', COMMIT, new Map());
    await expect(
      resolveHubModel('org/name', { env: { HF_HUB_CACHE: tmp }, fetch: hub.fetch, progress: false }),
    ).rejects.toThrow(/cannot download model "org\/name" .*Repository not found/);
  });

  it('refuses a repo without safetensors weights', async () => {
    const hub = fakeHub(
      'org/bin',
      COMMIT,
      new Map([
        ['config.json', Buffer.from('{}')],
        ['pytorch_model.bin', Buffer.from('x')],
      ]),
    );
    await expect(
      resolveHubModel('org/bin', { env: { HF_HUB_CACHE: tmp }, fetch: hub.fetch, progress: false }),
    ).rejects.toThrow(/only safetensors weights are supported/);
    expect(existsSync(join(storageOf(tmp, 'org/bin'), 'refs'))).toBe(false);
  });

  it('keeps a truncated download out of the cache', async () => {
    const files = new Map([
      ['config.json', Buffer.from('{}')],
      ['model.safetensors', Buffer.from('weights')],
    ]);
    const hub = fakeHub('org/short', COMMIT, files, { sizeSkew: 1 });
    await expect(
      resolveHubModel('org/short', { env: { HF_HUB_CACHE: tmp }, fetch: hub.fetch, progress: false }),
    ).rejects.toThrow(/config\.json arrived with 2 bytes instead of 3/);
    expect(await readdir(join(storageOf(tmp, 'org/short'), 'blobs'))).toEqual([]);
  });
});
