"""Write (and read) attnviz attention files from Python: numpy only, torch optional.

An attention file is a safetensors file (docs/attention-file.md in the attnviz repository) that
`attnviz export --from`, the app and the views read. This module writes one from what PyTorch users have:

- Hugging Face `outputs.attentions`: a tuple with one `[batch, H, T, T]` tensor per layer;
- a TransformerLens `ActivationCache`: `blocks.N.attn.hook_pattern` `[batch, H, T, T]` and, for the neuron view,
  `hook_q` / `hook_k` `[batch, T, H, d]` (`hook_rot_q` / `hook_rot_k` on rotary models: the vectors whose dot
  product the scores are);
- plain arrays `[L, H, T, T]`.

Torch tensors are converted with `.detach().cpu().float().numpy()`, so torch is never imported here.

    from attnviz_file import write_attention_file
    out = model(**enc, output_attentions=True)
    write_attention_file("cat.safetensors", out.attentions, tok.convert_ids_to_tokens(enc["input_ids"][0]))
"""

import json
import os
import struct
import tempfile

import numpy as np

FORMAT_VERSION = 1

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def _array(x, what):
    """A float32 numpy array from a numpy array, nested lists or a torch tensor (without importing torch)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    a = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} holds NaN or infinite values")
    return a


def _stack_layers(layers, what, batch, shape="[batch, heads, query, key]"):
    """One array [L, ...] from per-layer arrays that carry a batch axis first ([batch, ...])."""
    arrays = [_array(layer, f"{what}[{i}]") for i, layer in enumerate(layers)]
    if not arrays:
        raise ValueError(f"{what} is empty: no layers")
    for i, a in enumerate(arrays):
        if a.ndim != 4:
            raise ValueError(f"{what}[{i}] has shape {list(a.shape)}; expected {shape}")
        if not 0 <= batch < a.shape[0]:
            raise ValueError(f"batch index {batch} is out of range for {what}[{i}] of batch size {a.shape[0]}")
    return np.stack([a[batch] for a in arrays])


def _cache_layers(cache, hook):
    """The per-layer entries `blocks.N.attn.<hook>` of a TransformerLens ActivationCache (or any mapping)."""
    layers = []
    while f"blocks.{len(layers)}.attn.{hook}" in cache:
        layers.append(cache[f"blocks.{len(layers)}.attn.{hook}"])
    return layers


def _is_cache(x):
    return hasattr(x, "keys") and hasattr(x, "__getitem__") and "blocks.0.attn.hook_pattern" in x


def _heads_first(layers, what, batch):
    """TransformerLens q/k `[batch, T, H, d]` per layer → `[L, H, T, d]`."""
    arrays = []
    for i, layer in enumerate(layers):
        a = _array(layer, f"{what}[{i}]")
        if a.ndim != 4:
            raise ValueError(f"{what}[{i}] has shape {list(a.shape)}; expected [batch, pos, heads, d_head]")
        arrays.append(a[batch].transpose(1, 0, 2))
    return np.stack(arrays)


def write_attention_file(
    path,
    attentions,
    tokens,
    queries=None,
    keys=None,
    *,
    text=None,
    pair=None,
    sentence_b_start=None,
    model_source="",
    model_type="",
    causal=None,
    input_ids=None,
    rotary=None,
    prompt_length=None,
    batch=0,
):
    """Writes an attention file at `path` (atomically: a temporary file renamed into place).

    attentions: HF `outputs.attentions` (tuple of [batch, H, T, T]), a TransformerLens ActivationCache, or an
    array [L, H, T, T]. tokens: T token strings. queries / keys: [L, H, T, d] arrays, or per-layer tuples of
    [batch, H, T, d] (both or neither); taken from the cache when `attentions` is an ActivationCache.
    causal: None infers it from the attention (all zeros above the diagonal). rotary: 'half' or 'interleaved'
    when q/k are after RoPE (see docs/attention-file.md). prompt_length: for a generated text, how many of the
    tokens came from the prompt (the views mark the rest as generated). batch: which batch element to write.
    """
    if _is_cache(attentions):
        cache = attentions
        attention = _stack_layers(_cache_layers(cache, "hook_pattern"), "hook_pattern", batch)
        if queries is None and keys is None:
            rotated = "blocks.0.attn.hook_rot_q" in cache
            q_hook, k_hook = ("hook_rot_q", "hook_rot_k") if rotated else ("hook_q", "hook_k")
            if f"blocks.0.attn.{q_hook}" in cache and f"blocks.0.attn.{k_hook}" in cache:
                queries = _heads_first(_cache_layers(cache, q_hook), q_hook, batch)
                keys = _heads_first(_cache_layers(cache, k_hook), k_hook, batch)
    elif isinstance(attentions, (tuple, list)) and len(attentions) and np.ndim(_array(attentions[0], "x")) == 4:
        attention = _stack_layers(attentions, "attentions", batch)
    else:
        attention = _array(attentions, "attentions")
        if attention.ndim != 4:
            raise ValueError(
                f"attentions has shape {list(attention.shape)}; expected [layers, heads, T, T], a tuple of "
                "[batch, heads, T, T] per layer, or a TransformerLens ActivationCache"
            )

    L, H, T, Tk = attention.shape
    tokens = [str(t) for t in tokens]
    if T != Tk:
        raise ValueError(f"attention is {T} × {Tk}: self-attention must be square")
    if len(tokens) != T:
        raise ValueError(f"{len(tokens)} tokens but the attention covers {T} positions")
    rows = attention.sum(axis=-1)
    if np.any(attention < -1e-6) or np.any(np.abs(rows - 1) > 1e-3):
        raise ValueError("attention rows must be probabilities summing to 1 (pass softmax outputs, not scores)")
    if causal is None:
        causal = bool(np.all(np.triu(attention, 1) == 0))

    tensors = {"attention": attention}
    if (queries is None) != (keys is None):
        raise ValueError("queries and keys come together or not at all")
    if queries is not None:
        for name, value in (("query", queries), ("key", keys)):
            per_layer = isinstance(value, (tuple, list))
            a = _stack_layers(value, name, batch, "[batch, heads, T, d]") if per_layer else _array(value, name)
            if a.ndim != 4 or a.shape[:3] != (L, H, T):
                raise ValueError(f"{name} has shape {list(a.shape)}; expected [{L}, {H}, {T}, d]")
            tensors[name] = a
    if input_ids is not None:
        ids = np.asarray(input_ids.detach().cpu().numpy() if hasattr(input_ids, "detach") else input_ids)
        ids = ids.reshape(-1).astype(np.int64)
        if ids.shape != (T,):
            raise ValueError(f"input_ids has {ids.size} ids but the attention covers {T} positions")
        tensors["input_ids"] = ids

    meta = {
        "version": FORMAT_VERSION,
        "tokens": tokens,
        "text": text if text is not None else "",
        "pair": pair,
        "sentence_b_start": sentence_b_start,
        "model": {"source": model_source, "model_type": model_type},
        "causal": causal,
    }
    if rotary is not None:
        if rotary not in ("half", "interleaved"):
            raise ValueError(f"rotary must be 'half' or 'interleaved', not {rotary!r}")
        meta["rotary"] = rotary
    if prompt_length is not None:
        if not isinstance(prompt_length, int) or not 0 <= prompt_length <= T:
            raise ValueError(f"prompt_length must be a token count from 0 to {T}, not {prompt_length!r}")
        meta["prompt_length"] = prompt_length
    _write_safetensors(path, tensors, {"attnviz": json.dumps(meta, ensure_ascii=False)})


def _write_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, a in tensors.items():
        dtype = "F32" if a.dtype == np.float32 else "I64"
        data = np.ascontiguousarray(a.astype("<f4" if dtype == "F32" else "<i8")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned, as the safetensors library writes
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".attnviz-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for blob in blobs:
                f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_safetensors(path):
    """(tensors, metadata) of any safetensors file: numpy arrays and the raw `__metadata__` strings."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        if t["dtype"] not in _DTYPES:
            raise ValueError(f"tensor {name}: dtype {t['dtype']} is not read here")
        begin, end = t["data_offsets"]
        dtype = np.dtype(_DTYPES[t["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(raw[8 + n + begin : 8 + n + end], dtype=dtype).reshape(t["shape"])
    return tensors, metadata


def read_attention_file(path):
    """(tensors, metadata) of an attention file: numpy arrays, and the attnviz metadata as a dict."""
    tensors, metadata = read_safetensors(path)
    return tensors, json.loads(metadata.get("attnviz", "{}"))
