/**
 * onnxruntime's C API, called through koffi (a maintained FFI with prebuilt binaries) on the very library that
 * onnxruntime-node ships and has loaded: a session whose outputs come back without the binding's copy.
 *
 * Why: onnxruntime-node 1.30 copies every output into a new ArrayBuffer after the run, outputs passed in
 * pre-allocated too (its OrtValueToNapiValue), so an extraction at 512 tokens wrote its 190 MB twice, the second
 * time into memory glibc had just handed back to the system (page faults, ~3 µs per 4 KB on these VMs). Here
 * onnxruntime writes each output straight into the caller's buffer when that buffer comes from `outputArray`
 * (memory outside V8's heap, which does not move); other outputs are allocated by onnxruntime and copied once, or
 * left there for a later run to read in place (a staged session's values carried from stage to stage).
 * No memory of V8's is handed to onnxruntime: koffi's pointers to typed arrays hold only during a call.
 * bench/RESULTS.md has the figures. Only where the library loads (Linux, x64 or arm64); elsewhere the binding's
 * session is used.
 *
 * The indices below are positions in the C API's table of functions (OrtApi), which only ever grows at its end:
 * API version 18's table is a prefix of every later one's. They were counted in onnxruntime_c_api.h (of 1.29, whose
 * table begins with 1.30's), twice: by name and by the compiler's offsetof. One of them is checked by its behaviour
 * when the library loads (checkMemoryIndex): the newest, furthest down the table.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** onnxruntime 1.18 added AddExternalInitializersFromFilesInMemory, the newest function used here. */
const API_VERSION = 18;
const ENABLE_ALL = 99;
const LOG_ERROR = 3;
const ELEMENT = { float32: 1, int64: 7 } as const;

/** Whatever koffi returns for a pointer (an opaque external, or null). */
type Ptr = unknown;
type Fn = (...args: unknown[]) => unknown;
type AsyncFn = Fn & { async: (...args: unknown[]) => void };

/** The C API functions this module uses, by their index in OrtApi and their C signature (OrtStatus* returned). */
const SIGNATURES = {
  GetErrorMessage: [2, 'const char *f(void *status)'],
  CreateEnv: [3, 'void *f(int level, const char *id, _Out_ void **env)'],
  CreateSessionFromArray: [8, 'void *f(void *env, void *data, size_t length, void *options, _Out_ void **session)'],
  Run: [9, 'void *f(void *s, void *ro, const char **in, void **values, size_t n, const char **out, size_t m, void *o)'],
  CreateSessionOptions: [10, 'void *f(_Out_ void **options)'],
  DisableMemPattern: [17, 'void *f(void *options)'],
  DisableCpuMemArena: [19, 'void *f(void *options)'],
  SetSessionGraphOptimizationLevel: [23, 'void *f(void *options, int level)'],
  SetIntraOpNumThreads: [24, 'void *f(void *options, int threads)'],
  SessionGetInputCount: [30, 'void *f(void *session, _Out_ size_t *count)'],
  SessionGetOutputCount: [31, 'void *f(void *session, _Out_ size_t *count)'],
  SessionGetInputName: [36, 'void *f(void *session, size_t i, void *allocator, _Out_ void **name)'],
  SessionGetOutputName: [37, 'void *f(void *session, size_t i, void *allocator, _Out_ void **name)'],
  CreateTensorWithDataAsOrtValue: [
    49,
    'void *f(void *info, uint64_t data, size_t n, const int64_t *shape, size_t k, int type, _Out_ void **v)',
  ],
  CreateTensorAsOrtValue: [48, 'void *f(void *allocator, const int64_t *shape, size_t n, int type, _Out_ void **v)'],
  GetTensorMutableData: [51, 'void *f(void *value, _Out_ void **data)'],
  GetTensorElementType: [60, 'void *f(void *info, _Out_ int *type)'],
  GetDimensionsCount: [61, 'void *f(void *info, _Out_ size_t *count)'],
  GetDimensions: [62, 'void *f(void *info, int64_t *dims, size_t count)'],
  GetTensorTypeAndShape: [65, 'void *f(void *value, _Out_ void **info)'],
  AllocatorFree: [76, 'void *f(void *allocator, void *p)'],
  CreateMemoryInfo: [68, 'void *f(const char *name, int type, int id, int memType, _Out_ void **info)'],
  CreateCpuMemoryInfo: [69, 'void *f(int type, int memType, _Out_ void **info)'],
  GetAllocatorWithDefaultOptions: [78, 'void *f(_Out_ void **allocator)'],
  ReleaseStatus: [93, 'void f(void *status)'],
  ReleaseMemoryInfo: [94, 'void f(void *info)'],
  ReleaseSession: [95, 'void f(void *session)'],
  ReleaseValue: [96, 'void f(void *value)'],
  ReleaseTensorTypeAndShapeInfo: [99, 'void f(void *info)'],
  ReleaseSessionOptions: [100, 'void f(void *options)'],
  AddSessionConfigEntry: [130, 'void *f(void *options, const char *key, const char *value)'],
  CreateAndRegisterAllocator: [144, 'void *f(void *env, void *info, void *arenaConfig)'],
  AddExternalInitializersFromFilesInMemory: [
    279,
    'void *f(void *options, const char **names, const uint64_t *buffers, const size_t *lengths, size_t n)',
  ],
} as const;

type Api = { [K in keyof typeof SIGNATURES]: AsyncFn };

type Koffi = typeof import('koffi').default;

interface Loaded {
  koffi: Koffi;
  /**
   * onnxruntime's library, held for the process: koffi unloads a library once its handle and the functions made
   * from it are collected, and the API's functions here are decoded pointers, which do not hold it. Without the
   * binding (imported on demand) nothing else holds it, and the next call after a collection jumped into unmapped
   * memory.
   */
  library: unknown;
  api: Api;
  env: Ptr;
  allocator: Ptr;
  /** Where outputArray's memory lies: CPU, not onnxruntime's. */
  cpu: Ptr;
  /** glibc's madvise and malloc_trim, when they could be bound; mallinfo2 (glibc 2.33 on) when it could. */
  libc: { madvise: Fn; mallocTrim: Fn; mallinfo2: Fn | null } | null;
}

let loaded: Loaded | null | undefined;

/**
 * Turns off onnxruntime's telemetry unless the user chose (ORT_DISABLE_TELEMETRY set either way). Since 1.29
 * onnxruntime starts it with its environment on Linux too: it opens and appends to an SQLite store under
 * ~/.cache/Microsoft/DeveloperTools (growing with every process) and tries to upload it over HTTPS, which took
 * ~40 ms (median, up to 200) of every process's first session on these VMs (bench/RESULTS.md); attnviz works
 * offline.
 * Read once, when the environment is created: called before the C API's CreateEnv and the binding's import.
 */
export function quietTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
}

/** The C API of onnxruntime-node's library, loaded once; null where it cannot be (then the binding is used). */
function load(): Loaded | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) return loaded;
  try {
    const require = createRequire(import.meta.url);
    // Required here, not imported: where koffi has no binary for the platform, the binding is used instead.
    const koffi = require('koffi') as Koffi;
    const root = dirname(dirname(require.resolve('onnxruntime-node')));
    const lib = koffi.load(join(root, 'bin', 'napi-v6', 'linux', process.arch, 'libonnxruntime.so.1'));
    const base = (lib.func('void *OrtGetApiBase()') as Fn)();
    const [getApi] = koffi.decode(base, koffi.array('void *', 2)) as Ptr[];
    const table = koffi.call(getApi, koffi.proto('void *GetApi(uint32_t version)'), API_VERSION);
    if (!table) return loaded;
    const size = Math.max(...Object.values(SIGNATURES).map(([i]) => i)) + 1;
    const pointers = koffi.decode(table, koffi.array('void *', size)) as Ptr[];
    const api = Object.fromEntries(
      Object.entries(SIGNATURES).map(([name, [i, signature]]) => [
        name,
        koffi.decode(pointers[i], koffi.proto(signature.replace(/\bf\(/, `${name}(`))) as AsyncFn,
      ]),
    ) as Api;
    checkMemoryIndex(koffi, api);
    quietTelemetry();
    const out: Ptr[] = [null];
    check(api, api.CreateEnv(LOG_ERROR, 'attnviz', out));
    const env = out[0];
    check(api, api.GetAllocatorWithDefaultOptions(out));
    const allocator = out[0];
    check(api, api.CreateCpuMemoryInfo(0, 0, out));
    loaded = { koffi, library: lib, api, env, allocator, cpu: out[0], libc: bindLibc(koffi) };
  } catch {
    loaded = null;
  }
  return loaded;
}

/**
 * Checks that AddExternalInitializersFromFilesInMemory is where it was counted, by what it does: it refuses a
 * file name given twice with a message of its own (it only records names and addresses: nothing is read). A wrong
 * index throws here (load() then leaves the C API unused, which the tests notice) or crashes the process at once.
 */
function checkMemoryIndex(koffi: Koffi, api: Api): void {
  const out: Ptr[] = [null];
  check(api, api.CreateSessionOptions(out));
  try {
    const bytes = new ArrayBuffer(8);
    const at = BigUint64Array.of(koffi.address(bytes), koffi.address(bytes));
    const lengths = BigUint64Array.of(8n, 8n);
    const status = api.AddExternalInitializersFromFilesInMemory(out[0], ['attnviz', 'attnviz'], at, lengths, 2);
    const message = status ? (api.GetErrorMessage(status) as string) : '';
    if (status) api.ReleaseStatus(status);
    if (!message.includes('already been added'))
      throw new Error(`onnxruntime's C API: not AddExternalInitializersFromFilesInMemory (${message})`);
  } finally {
    api.ReleaseSessionOptions(out[0]);
  }
}

/** glibc's madvise and malloc_trim (null elsewhere: no huge pages for outputArray, no trimHeap). */
function bindLibc(koffi: Koffi): Loaded['libc'] {
  try {
    const libc = koffi.load('libc.so.6');
    // struct mallinfo2: ten size_t counters, in glibc's order.
    const fields = 'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost'.split(' ');
    const info = koffi.struct('mallinfo2', Object.fromEntries(fields.map((f) => [f, 'size_t'])));
    let mallinfo2: Fn | null = null;
    try {
      mallinfo2 = libc.func('mallinfo2', info, []) as Fn;
    } catch {
      // glibc before 2.33: trimHeapAbove trims every time.
    }
    return {
      madvise: libc.func('int madvise(uint64_t addr, size_t length, int advice)') as Fn,
      mallocTrim: libc.func('int malloc_trim(size_t pad)') as Fn,
      mallinfo2,
    };
  } catch {
    return null;
  }
}

/**
 * Hands back to the system the memory glibc's heap keeps after a session's creation. onnxruntime copies each
 * initializer, prepacks it into new blocks and frees the copy; blocks under glibc's dynamic mmap threshold (up to
 * 32 MB: a Q4_K matrix's codes) come from the heap, and freed ones below live blocks stay there, counted in the
 * process's memory, until malloc_trim returns their pages (8B-shaped Q4_K, 4 layers: resident weights 1.41× →
 * 1.10× the tensor bytes, in ~60 ms; bench/RESULTS.md). Nothing where glibc could not be bound.
 */
export function trimHeap(): void {
  load()?.libc?.mallocTrim(0);
}

/**
 * trimHeap once glibc's heaps hold more than `bytes` free (mallinfo2's fordblks). Trimming costs more than its
 * call: the next run faults the pages back in (1B Llama shapes at 2048 tokens, a trim after each layer: 1.3–2.4 s of
 * a ~20 s pass; bench/RESULTS.md, eighth session).
 */
export function trimHeapAbove(bytes: number): void {
  const libc = load()?.libc;
  const free = libc?.mallinfo2?.() as { fordblks: number | bigint } | undefined;
  if (!free || Number(free.fordblks) > bytes) libc?.mallocTrim(0);
}

const HUGE_PAGE = 2n << 20n;
const MADV_HUGEPAGE = 14;

/** Throws onnxruntime's message for a non-null OrtStatus (and releases it). */
function check(api: Api, status: unknown): void {
  if (!status) return;
  const message = api.GetErrorMessage(status) as string;
  api.ReleaseStatus(status);
  throw new Error(message);
}

/** Calls a C API function on koffi's worker threads (onnxruntime's work stays off the event loop). */
function later(api: Api, fn: AsyncFn, ...args: unknown[]): Promise<void> {
  return new Promise((resolve, reject) =>
    fn.async(...args, (error: Error | null, status: unknown) => {
      if (error) return reject(error);
      try {
        check(api, status);
        resolve();
      } catch (e) {
        reject(e);
      }
    }),
  );
}

/** Bytes in memory that stays put while an asynchronous call reads it (koffi may move typed arrays). */
function pinned(koffi: Koffi, bytes: Uint8Array): Ptr {
  const p = koffi.alloc('uint8_t', Math.max(1, bytes.byteLength));
  new Uint8Array(koffi.view(p, bytes.byteLength)).set(bytes);
  return p;
}

/** The address of each outputArray's memory and of each held output's, by its buffer. */
const addresses = new WeakMap<ArrayBuffer, bigint>();

/** Outputs left in onnxruntime's memory (DirectSession.run's `hold`), by the buffer that views them. */
const held = new WeakMap<ArrayBuffer, Ptr>();
let heldCount = 0;

/** How many outputs runs hold now (none once every stream that held one has ended). */
export function heldOutputs(): number {
  return heldCount;
}

/** A block of memory outside V8's heap, from koffi.alloc. */
interface Block {
  p: Ptr;
  address: bigint;
  bytes: number;
  /** The block's own view, made once, through which onnxruntime writes a fresh result (lentArray); never handed out. */
  inner?: ArrayBuffer;
}

/**
 * Blocks of collected outputArrays, kept for the next ones instead of freed. A fresh page costs ~20 µs to fault
 * in on these VMs where the kernel grants no huge page (151 MB: 0.4–0.75 s, against 7 ms to zero memory the
 * process holds; bench/RESULTS.md), so a caller who lets each result go before asking for the next pays for fresh
 * memory once, not per call. A block serves a request of at least half its size. They are freed ten seconds after
 * the last came back, so they do not outlive their use, and never hold more than SPARES_MAX.
 */
const spares: Block[] = [];
const SPARES_MAX = 2 ** 30;
const SPARES_IDLE_MS = 10_000;
let sparesTimer: ReturnType<typeof setTimeout> | undefined;

let freeing: FinalizationRegistry<Block> | undefined;

function freeSpares(koffi: Koffi): void {
  for (const b of spares.splice(0)) koffi.free(b.p);
}

/** A collected outputArray's block: kept as a spare while the spares stay under SPARES_MAX, freed otherwise. */
function giveBack(koffi: Koffi, b: Block): void {
  if (spares.reduce((n, s) => n + s.bytes, b.bytes) > SPARES_MAX) return void koffi.free(b.p);
  spares.push(b);
  clearTimeout(sparesTimer);
  sparesTimer = setTimeout(() => freeSpares(koffi), SPARES_IDLE_MS).unref();
}

/**
 * The smallest spare block that serves `bytes`, taken out of the spares; or a new block, advised huge pages (then
 * `fresh`).
 */
function block(c: Loaded, bytes: number): Block & { fresh: boolean } {
  const { koffi } = c;
  const fits = spares.filter((b) => b.bytes >= bytes && b.bytes <= 2 * bytes).sort((a, b) => a.bytes - b.bytes);
  if (fits.length) return { ...spares.splice(spares.indexOf(fits[0]), 1)[0], fresh: false };
  const p = koffi.alloc('uint8_t', bytes);
  const address = koffi.address(p) as bigint;
  // Transparent huge pages where the kernel gives them on request (THP "madvise", the default of many
  // distributions): a fresh block's first touch then faults 2 MB at a time, not 4 KB (151 MB filled in 32–100 ms
  // instead of ~720 ms on these VMs when they are granted; they are not always).
  const start = ((address + HUGE_PAGE - 1n) / HUGE_PAGE) * HUGE_PAGE;
  const end = ((address + BigInt(bytes)) / HUGE_PAGE) * HUGE_PAGE;
  if (c.libc && end > start) c.libc.madvise(start, Number(end - start), MADV_HUGEPAGE);
  return { p, address, bytes, fresh: true };
}

/**
 * Resolves once the blocks of arrays already collected are back among the spares. V8 hands collected objects to
 * their FinalizationRegistry in a task that Node runs in the event loop's poll phase; two turns of setImmediate
 * (the check phase) pass through one poll phase from whichever phase the caller is in.
 */
export async function sparesBack(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise(setImmediate);
}

/** The bytes the spares hold now (for tests and benchmarks). */
export function spareBytes(): number {
  return spares.reduce((n, b) => n + b.bytes, 0);
}

/**
 * A Float32Array that a DirectSession run writes in place when it is passed as an output buffer (no copy at all):
 * its memory lies outside V8's heap, where it does not move, and goes back to the spares once the array's buffer
 * is collected. Meant to be written whole, as an output is: it holds zeros when its memory is new, and a collected
 * array's values when it is a spare (not cleared: zeroing BERT-base's 190 MB at 512 tokens took 25–40 ms, on a
 * loaded machine, of a ~400 ms call). A plain Float32Array where the C API is not loaded.
 */
export function outputArray(length: number): Float32Array {
  const c = load();
  if (!c || length === 0) return new Float32Array(length);
  const { fresh, ...b } = block(c, length * 4);
  const array = viewOf(c, b, length);
  return fresh ? array.fill(0) : array;
}

/** A new Float32Array over the start of block `b`, which goes back to the spares once the array is collected. */
function viewOf(c: Loaded, b: Block, length: number): Float32Array {
  const { koffi } = c;
  const buffer = koffi.view(b.p, length * 4) as ArrayBuffer;
  freeing ??= new FinalizationRegistry((held: Block) => giveBack(koffi, held));
  freeing.register(buffer, b);
  addresses.set(buffer, b.address);
  return new Float32Array(buffer);
}

/** Blocks lent by lentArray, by their inner view, until handed over or given back. */
const lent = new WeakMap<ArrayBuffer, Block>();

/**
 * A Float32Array for a fresh result to be written into, to be passed to handOver() once written (or to
 * returnLent() if the run fails). Why not outputArray: V8 counts an ArrayBuffer over outside memory as external
 * memory, and every new one of more than 64 MB since the last full collection makes it start one (its external
 * memory pressure: the limit is 64 MB above the lowest count since then, and a collected result lowers the count).
 * A fresh result's new arrays made before the run had that collection — marking the whole heap, three GPT-2
 * tokenizers' worth in the benchmark's process — run on the cores onnxruntime was using. Here onnxruntime writes
 * through a view the block keeps for good (`inner`, counted once, when the block is new), and the caller's arrays
 * are made after the run, so the collection they bring about runs once the call has returned (bench/RESULTS.md,
 * seventh session). A plain Float32Array where the C API is not loaded.
 */
export function lentArray(length: number): Float32Array {
  const c = load();
  if (!c || length === 0) return new Float32Array(length);
  const { fresh, ...b } = block(c, length * 4);
  if (!b.inner) {
    b.inner = c.koffi.view(b.p, b.bytes) as ArrayBuffer;
    addresses.set(b.inner, b.address);
  }
  lent.set(b.inner, b);
  const array = new Float32Array(b.inner, 0, length);
  return fresh ? array.fill(0) : array;
}

/**
 * The caller's array over a lent array's memory (as outputArray's: its block goes back to the spares once it is
 * collected); the lent array must not be used after. Any other array is returned as it is.
 */
export function handOver(array: Float32Array): Float32Array {
  const b = lent.get(array.buffer as ArrayBuffer);
  if (!b) return array;
  lent.delete(array.buffer as ArrayBuffer);
  return viewOf(load()!, b, array.length);
}

/** Puts a lent array's block back among the spares (a run that failed); the array must not be used after. */
export function returnLent(array: Float32Array): void {
  const b = lent.get(array.buffer as ArrayBuffer);
  if (!b) return;
  lent.delete(array.buffer as ArrayBuffer);
  giveBack(load()!.koffi, b);
}

/** An external-data file given as bytes: `path` is the location the graph's initializers name. */
export interface MemoryFile {
  path: string;
  data: Uint8Array;
}

/**
 * Memory files whose bytes a session's creation is reading (on koffi's worker thread), referenced here until it
 * ends so that their memory cannot be collected under it.
 */
const reading = new Set<readonly MemoryFile[]>();

/**
 * Hands onnxruntime the memory files by address, as onnxruntime-node does with SessionOptions.externalData: the
 * call only records names and addresses; the bytes are read where they are while the session is created, and
 * copied into onnxruntime's own memory (its documentation says so; a test in test/gguf.test.ts overwrites them
 * after the creation and gets the same results). The address of an ArrayBuffer's memory holds while it lives:
 * V8 never moves an ArrayBuffer's backing store (only typed arrays of up to 64 bytes start inside V8's heap, and
 * asking for their `buffer`, as here, moves it out for good). Typed arrays passed as arguments, koffi's pointers
 * to them, hold only during a call; this one is synchronous.
 */
function addMemoryFiles(c: Loaded, options: Ptr, files: readonly MemoryFile[]): void {
  const { api, koffi } = c;
  const at = BigUint64Array.from(files, (f) => koffi.address(f.data.buffer) + BigInt(f.data.byteOffset));
  const lengths = BigUint64Array.from(files, (f) => BigInt(f.data.byteLength));
  const names = files.map((f) => f.path);
  check(api, api.AddExternalInitializersFromFilesInMemory(options, names, at, lengths, files.length));
}

/** How a DirectSession is made: as runtime/session.ts SessionOptions say, the thread count resolved. */
export interface DirectSettings {
  threads: number;
  memory?: readonly MemoryFile[];
  noArena?: boolean;
  /** The process's shared arena (sharedArena()) serves its runs, where it could be registered; else noArena says. */
  sharedArena?: boolean;
  stopSpinning?: boolean;
}

/** Whether the shared arena is registered: undefined until first asked, then for good. */
let arenaShared: boolean | undefined;

/**
 * One memory arena for every session that asks for it (the per-layer and attention sessions of a split model,
 * runtime/session.ts), registered once with onnxruntime's environment. Such sessions run one after another, so
 * one arena serves them all at the size of the largest run's working set, and keeps it for the next: without an
 * arena each of those runs took its intermediates (64 MB MLP activations at 2048 tokens) as fresh pages from the
 * system (glibc serves such blocks to onnxruntime's threads from mmap whatever its tunables), twice the plain
 * pass's page faults; with an arena per session, L arenas would each keep their peak (bench/RESULTS.md, sixth
 * session). The weights stay out of it (session.use_device_allocator_for_initializers). Its index is checked by
 * behaviour: it refuses a non-CPU device with a message of its own, and registers nothing then.
 */
function sharedArena(c: Loaded): boolean {
  if (arenaShared !== undefined) return arenaShared;
  arenaShared = false;
  const { api } = c;
  const out: Ptr[] = [null];
  check(api, api.CreateMemoryInfo('Cuda', 0, 0, 0, out));
  const probe = api.CreateAndRegisterAllocator(c.env, out[0], null);
  api.ReleaseMemoryInfo(out[0]);
  const message = probe ? (api.GetErrorMessage(probe) as string) : '';
  if (probe) api.ReleaseStatus(probe);
  if (!message.includes('Only CPU devices')) return arenaShared;
  // An arena allocator (type 1) on the CPU, with onnxruntime's default arena settings.
  check(api, api.CreateCpuMemoryInfo(1, 0, out));
  try {
    check(api, api.CreateAndRegisterAllocator(c.env, out[0], null));
    arenaShared = true;
  } finally {
    api.ReleaseMemoryInfo(out[0]);
  }
  return arenaShared;
}

export interface DirectFeed {
  type: keyof typeof ELEMENT;
  data: Float32Array | BigInt64Array;
  dims: readonly number[];
}

export interface DirectOutput {
  data: Float32Array;
  dims: readonly number[];
}

/** One onnxruntime session created and run through the C API (see the module comment). */
export class DirectSession {
  private constructor(
    private readonly c: Loaded,
    private session: Ptr,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  /** Whether this platform can use it. */
  static get available(): boolean {
    return load() !== null;
  }

  /**
   * A session over `graph`, its external data resolved under `weightsRoot`, or found in `memory` (files given as
   * bytes), with the settings Session.create gives the binding's sessions (runtime/session.ts SessionOptions).
   */
  static async create(graph: Uint8Array, weightsRoot: string, settings: DirectSettings): Promise<DirectSession> {
    const { threads, memory = [], noArena = false, sharedArena: shared = false, stopSpinning = false } = settings;
    const c = load();
    if (!c) throw new Error('onnxruntime C API not available here');
    const { api, koffi } = c;
    const out: Ptr[] = [null];
    check(api, api.CreateSessionOptions(out));
    const options = out[0];
    const bytes = pinned(koffi, graph);
    reading.add(memory);
    try {
      check(api, api.SetSessionGraphOptimizationLevel(options, ENABLE_ALL));
      check(api, api.SetIntraOpNumThreads(options, threads));
      check(
        api,
        api.AddSessionConfigEntry(options, 'session.model_external_initializers_file_folder_path', weightsRoot),
      );
      // The environment's shared arena replaces the session's own allocator where it is registered; else the
      // session has its own arena, or none (noArena).
      if (shared && sharedArena(c)) {
        check(api, api.AddSessionConfigEntry(options, 'session.use_env_allocators', '1'));
        check(api, api.AddSessionConfigEntry(options, 'session.use_device_allocator_for_initializers', '1'));
        check(api, api.DisableMemPattern(options));
      } else if (noArena) {
        check(api, api.DisableCpuMemArena(options));
        check(api, api.DisableMemPattern(options));
      }
      if (stopSpinning) check(api, api.AddSessionConfigEntry(options, 'session.force_spinning_stop', '1'));
      if (memory.length > 0) addMemoryFiles(c, options, memory);
      const session: Ptr[] = [null];
      await later(api, api.CreateSessionFromArray, c.env, bytes, graph.byteLength, options, session);
      const names = (count: AsyncFn, name: AsyncFn) => {
        const n: number[] = [0];
        check(api, count(session[0], n));
        return Array.from({ length: n[0] }, (_, i) => {
          check(api, name(session[0], i, c.allocator, out));
          const text = koffi.decode(out[0], 'char', -1) as string;
          check(api, api.AllocatorFree(c.allocator, out[0]));
          return text;
        });
      };
      return new DirectSession(
        c,
        session[0],
        names(api.SessionGetInputCount, api.SessionGetInputName),
        names(api.SessionGetOutputCount, api.SessionGetOutputName),
      );
    } finally {
      api.ReleaseSessionOptions(options);
      koffi.free(bytes);
      reading.delete(memory);
    }
  }

  /**
   * Runs the graph and returns the outputs named in `fetch`: those named in `into` copied into those buffers
   * (their sizes must match); those named in `hold` left where onnxruntime put them, as views that a later run
   * reads in place until `drop` releases them; the others copied into new arrays. Not re-entrant: the caller queues
   * runs.
   */
  async run(
    feeds: Record<string, DirectFeed>,
    into: Record<string, DirectOutput>,
    fetch: readonly string[],
    hold: readonly string[] = [],
  ): Promise<Record<string, DirectOutput>> {
    const { api, allocator, koffi } = this.c;
    const out: Ptr[] = [null];
    const inputs: Ptr[] = [];
    const outputs = koffi.alloc('void *', Math.max(1, fetch.length));
    new Uint8Array(koffi.view(outputs, Math.max(1, fetch.length) * 8)).fill(0);
    let values: Ptr[] = [];
    try {
      const names = Object.keys(feeds);
      for (const name of names) {
        const { type, data, dims } = feeds[name];
        const shape = BigInt64Array.from(dims, BigInt);
        // A feed in outputArray's memory (a split layer's q, k, v, context, masks) is read where it is.
        const address = addresses.get(data.buffer as ArrayBuffer);
        if (address !== undefined) {
          const at = address + BigInt(data.byteOffset);
          check(
            api,
            api.CreateTensorWithDataAsOrtValue(this.c.cpu, at, data.byteLength, shape, dims.length, ELEMENT[type], out),
          );
          inputs.push(out[0]);
          continue;
        }
        check(api, api.CreateTensorAsOrtValue(allocator, shape, dims.length, ELEMENT[type], out));
        inputs.push(out[0]);
        if (data.byteLength === 0) continue;
        check(api, api.GetTensorMutableData(out[0], out));
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        new Uint8Array(koffi.view(out[0], data.byteLength)).set(bytes);
      }
      // Outputs with a buffer from outputArray are written there in place; onnxruntime allocates the others.
      const slots = new BigUint64Array(koffi.view(outputs, Math.max(1, fetch.length) * 8));
      const inPlace = fetch.map((name, i) => {
        const target = into[name];
        const address = target && addresses.get(target.data.buffer as ArrayBuffer);
        if (address === undefined) return false;
        const { data, dims } = target;
        const shape = BigInt64Array.from(dims, BigInt);
        const at = address + BigInt(data.byteOffset);
        check(
          api,
          api.CreateTensorWithDataAsOrtValue(this.c.cpu, at, data.byteLength, shape, dims.length, ELEMENT.float32, out),
        );
        values.push(out[0]);
        slots[i] = koffi.address(out[0]);
        return true;
      });
      await later(api, api.Run, this.session, null, names, inputs, names.length, fetch, fetch.length, outputs);
      const fetched = koffi.decode(outputs, koffi.array('void *', fetch.length)) as Ptr[];
      values = [...values, ...fetched.filter((_, i) => !inPlace[i])];
      const result: Record<string, DirectOutput> = {};
      fetch.forEach((name, i) => {
        const kept = !inPlace[i] && hold.includes(name) && this.hold(fetched[i], name);
        if (kept) values = values.filter((v) => v !== fetched[i]); // released by drop, not here
        result[name] = inPlace[i] ? into[name] : kept || this.read(fetched[i], into[name], name);
      });
      return result;
    } finally {
      for (const v of [...inputs, ...values]) if (v) api.ReleaseValue(v);
      koffi.free(outputs);
    }
  }

  /** An output's float32 values, copied out of onnxruntime's memory into `into` or a new array. */
  private read(value: Ptr, into: DirectOutput | undefined, name: string): DirectOutput {
    const { data: source, dims } = this.outputView(value, name);
    if (!into) return { data: source.slice(), dims };
    if (into.data.length !== source.length)
      throw new Error(`output ${name}: ${source.length} values, its buffer holds ${into.data.length}`);
    into.data.set(source);
    return { data: into.data, dims };
  }

  /**
   * An output's float32 values left where onnxruntime put them, fed in place to later runs (`addresses`); the
   * value is kept until `drop`. False for an empty output (nothing to hold: the caller releases it).
   */
  private hold(value: Ptr, name: string): DirectOutput | false {
    const output = this.outputView(value, name);
    if (output.data.length === 0) return false;
    const buffer = output.data.buffer as ArrayBuffer;
    addresses.set(buffer, this.c.koffi.address(this.dataOf(value)) as bigint);
    held.set(buffer, value);
    heldCount++;
    return output;
  }

  /** A view of an output's float32 values in onnxruntime's memory, valid while the value lives. */
  private outputView(value: Ptr, name: string): DirectOutput {
    const { api, koffi } = this.c;
    const out: Ptr[] = [null];
    check(api, api.GetTensorTypeAndShape(value, out));
    const info = out[0];
    const dims: number[] = [];
    try {
      const type: number[] = [0];
      check(api, api.GetTensorElementType(info, type));
      if (type[0] !== ELEMENT.float32) throw new Error(`output ${name}: element type ${type[0]}, not float32`);
      const n: number[] = [0];
      check(api, api.GetDimensionsCount(info, n));
      const shape = new BigInt64Array(n[0]);
      check(api, api.GetDimensions(info, shape, n[0]));
      dims.push(...Array.from(shape, Number));
    } finally {
      api.ReleaseTensorTypeAndShapeInfo(info);
    }
    const length = dims.reduce((a, b) => a * b, 1);
    if (length === 0) return { data: new Float32Array(0), dims };
    return { data: new Float32Array(koffi.view(this.dataOf(value), length * 4)), dims };
  }

  private dataOf(value: Ptr): Ptr {
    const out: Ptr[] = [null];
    check(this.c.api, this.c.api.GetTensorMutableData(value, out));
    return out[0];
  }

  /** Releases an output held by `run` (nothing for other arrays); its view must not be read after. */
  drop(output: DirectOutput): void {
    const buffer = output.data.buffer as ArrayBuffer;
    const value = held.get(buffer);
    if (value === undefined) return;
    held.delete(buffer);
    addresses.delete(buffer);
    heldCount--;
    this.c.api.ReleaseValue(value);
  }

  /** Releases the session (no run may be under way). */
  release(): void {
    if (this.session) this.c.api.ReleaseSession(this.session);
    this.session = null;
  }
}
