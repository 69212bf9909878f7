#!/usr/bin/env python3
"""PyTorch eager peer of bench/engine.ts: the same random checkpoints, the same token ids, run in PyTorch.

bench/engine.ts starts this script as a child and interleaves its runs with attnviz's, one JSON request per
line on stdin, one JSON reply per line on stdout:

  {"cmd": "info"}                                   → torch version, threads, the OpenBLAS kernel chosen
  {"cmd": "load", "kind": "bert"|"gpt2", "dir": D, "threads": N}  → reads D/model.safetensors, D/config.json
  {"cmd": "run", "ids": [...]}                      → {"ms": wall time of one forward with attentions}
  {"cmd": "dump", "ids": [...], "path": P}          → writes the attention [L, H, T, T] as raw float32 to P

The models are written out here in eager PyTorch as Hugging Face's `attn_implementation="eager"` computes
them (BertModel, GPT2Model): every layer's softmax probabilities are kept, and the q/k that made them, as
`output_attentions=True` keeps the former. transformers itself is not needed (Debian has no package for it).
Debian's python3-torch with libopenblas0-openmp; the caller unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE so
that OpenBLAS picks its own kernel, and sets the thread count (torch.set_num_threads) to attnviz's.
"""

import ctypes
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32}


def read_safetensors(path):
    """name → torch tensor (float32), from a safetensors file (8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        out[name] = torch.from_numpy(array.copy())
    return out


def bert(w, c, ids):
    """BertModel (eager): embeddings, then post-norm layers; returns (probs per layer, q/k per layer, last hidden)."""
    D, H, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    d = D // H
    T = ids.shape[0]
    p = "bert."
    e = p + "embeddings."
    x = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][:T]
    x = x + w[e + "token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = F.layer_norm(x, (D,), w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"], eps)
    probs, qk = [], []
    for i in range(c["num_hidden_layers"]):
        l = f"{p}encoder.layer.{i}."
        lin = lambda x, name: F.linear(x, w[l + name + ".weight"], w[l + name + ".bias"])
        heads = lambda x: x.view(T, H, d).transpose(0, 1)
        q, k, v = (heads(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        probs.append(a)
        qk.append((q, k))
        ctx = (a @ v).transpose(0, 1).reshape(T, D)
        ln = lambda x, name: F.layer_norm(x, (D,), w[l + name + ".weight"], w[l + name + ".bias"], eps)
        x = ln(lin(ctx, "attention.output.dense") + x, "attention.output.LayerNorm")
        x = ln(lin(F.gelu(lin(x, "intermediate.dense")), "output.dense") + x, "output.LayerNorm")
    return probs, qk, x


def gpt2(w, c, ids):
    """GPT2Model (eager): pre-norm layers, causal mask, final ln_f; Conv1D weights are [in, out]."""
    D, H, eps = c["n_embd"], c["n_head"], c["layer_norm_epsilon"]
    d = D // H
    T = ids.shape[0]
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    floor = torch.tensor(torch.finfo(torch.float32).min)
    probs, qk = [], []
    for i in range(c["n_layer"]):
        l = f"h.{i}."
        conv = lambda x, name: torch.addmm(w[l + name + ".bias"], x, w[l + name + ".weight"])
        ln = lambda x, name: F.layer_norm(x, (D,), w[l + name + ".weight"], w[l + name + ".bias"], eps)
        q, k, v = (t.view(T, H, d).transpose(0, 1) for t in conv(ln(x, "ln_1"), "attn.c_attn").split(D, dim=1))
        scores = torch.where(causal, q @ k.transpose(-1, -2) / math.sqrt(d), floor)
        a = torch.softmax(scores, dim=-1)
        probs.append(a)
        qk.append((q, k))
        x = x + conv((a @ v).transpose(0, 1).reshape(T, D), "attn.c_proj")
        x = x + conv(F.gelu(conv(ln(x, "ln_2"), "mlp.c_fc"), approximate="tanh"), "mlp.c_proj")
    return probs, qk, F.layer_norm(x, (D,), w["ln_f.weight"], w["ln_f.bias"], eps)


def openblas():
    """The OpenBLAS this process loaded (through torch's BLAS): its config string and the kernel it chose."""
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return {
                "library": path,
                "core": lib.openblas_get_corename().decode(),
                "config": lib.openblas_get_config().decode().strip(),
                "parallel": ["sequential", "pthreads", "OpenMP"][lib.openblas_get_parallel()],
            }
        except (OSError, AttributeError):
            continue
    return None


def main():
    model = None
    # A first matmul makes torch load its BLAS, so that /proc/self/maps shows it.
    torch.randn(64, 64) @ torch.randn(64, 64)
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "info":
            reply = {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "openblas": openblas(),
                "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")},
            }
        elif cmd == "load":
            torch.set_num_threads(req["threads"])
            with open(os.path.join(req["dir"], "config.json")) as f:
                config = json.load(f)
            weights = read_safetensors(os.path.join(req["dir"], "model.safetensors"))
            forward = bert if req["kind"] == "bert" else gpt2
            model = lambda ids, w=weights, c=config, f=forward: f(w, c, ids)
            reply = {"ok": True}
        elif cmd in ("run", "dump"):
            ids = torch.tensor(req["ids"], dtype=torch.long)
            with torch.no_grad():
                t = time.perf_counter()
                probs, _, _ = model(ids)
                ms = (time.perf_counter() - t) * 1000
            if cmd == "dump":
                torch.stack(probs).contiguous().numpy().astype(np.float32).tofile(req["path"])
            reply = {"ms": ms}
        else:
            reply = {"error": f"unknown command {cmd}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
