"""Frozen-prefix feature cache.

When the lower blocks are frozen (and in eval mode, so no dropout) their output is a
fixed function of the tokens. We compute the hidden states at the freeze boundary once,
in length-sorted large batches with no autograd, and every epoch (and every evaluation)
runs only the trainable top. States are stored per example without padding in one flat
fp32 tensor; large sets spill to a disk memmap named by a key over everything upstream
(weights, split point, token ids - which already fold in tokenizer, max length and data),
so a stale file can never be picked up.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.batching import Encoded, collate, sorted_batches
from ..machine import machine_info
from ..paths import cache_root
from .device import autocast
from .faults import maybe_die

MEMORY_LIMIT_BYTES = int(float(os.environ.get("LMCLASSIFY_FEATURE_MEMORY_GB", "4")) * 2**30)
# ``auto`` takes int8 over bf16 only when its timed matmuls are this much faster: setting up
# the int8 copy and everything outside the matmuls (the bf16 copy runs those in bf16 too) are
# not in that timing. Xeon with AMX: int8 timed 0.86x bf16's time, yet its cache took 1.2x
# that of bf16 under autocast (bench/results/speed-intel-amx-bf16.md), slower than bf16 throughout.
INT8_OVERHEAD = 1.5
# ... and bf16 over a winning int8 only where the CPU multiplies bf16 in tiles (AMX). With
# dot-product bf16 alone (AVX512_BF16: AMD EPYC Zen 4) bf16 matmuls timed 2x fp32, but a
# bf16 cache's whole forward (norms, attention, activations in bf16) took 1.15-1.3x the int8
# cache's time (bench/results/speed-amd-avx512.md).
BF16_TILES = "amx_bf16"
# What a bf16 cache's file name says: bf16 throughout (stop 19's bf16 caches ran under
# autocast with fp32 norms and residual stream, tagged "bf16": never read as these).
BF16_TAG = "bf16all"


def cache_key(model, input_ids: list[list[int]]) -> str:
    h = hashlib.sha256()
    h.update(str(model.split).encode())
    h.update(model_fingerprint(model).encode())
    for ids in input_ids:
        h.update(np.asarray(ids, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:24]


def model_fingerprint(model) -> str:
    """Identity of the frozen prefix: a hash over a strided sample of every frozen tensor
    (full hashing of 0.5 GB costs seconds; any fine-tune or different checkpoint moves
    these values)."""
    h = hashlib.sha256()
    for name, p in model.backbone.base.named_parameters():
        if p.requires_grad:
            continue
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        h.update(name.encode())
        h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Precision:
    """What the frozen blocks compute cached states in (``name``: fp32, int8 or bf16) and,
    for int8, on which kernel: decided once (``resolve_precision``) so that a run records
    what really computed its states. A machine too busy to time goes by its CPU flags and
    is timed at the next lookup, which could decide otherwise mid-run."""

    name: str
    kernel: Optional[str] = None


FP32 = Precision("fp32")


def build_features(model, enc: Encoded, pad_id: int, device: torch.device,
                   tokens_per_batch: int = 8192, max_texts: int = 32, desc: str = "features",
                   spill_dir: Optional[Path] = None, precision: Union[str, Precision] = "fp32") -> Encoded:
    """Fill ``enc.features`` (and a siamese pair's ``enc.pair_features``) with boundary
    states; returns ``enc`` for chaining. ``spill_dir``: keep them on disk there whatever
    their size (a run's folder, so a resumed run reads them instead of recomputing).
    ``precision="int8"``: an int8 copy of the frozen blocks computes them (CPU only, on
    the kernel ``models/int8_kernels.py`` picks; fp32 where no integer kernel wins).
    ``"bf16"``: the embeddings and frozen blocks run in bf16 (where the CPU does bf16 natively,
    ``bf16.choose_bf16``; fp32 elsewhere); ``"auto"``: see ``resolve_precision``, which a
    ``Precision`` already went through."""
    if isinstance(precision, str):
        precision = resolve_precision(model, precision, device)  # int8/bf16 only where they win
    # built only if a split must be computed (not when its states are found on disk), once
    compute = functools.cache(lambda: _int8_prefix(model, precision.kernel) if precision.name == "int8" else
                              _bf16_prefix(model) if precision.name == "bf16" else model)
    tag = {"fp32": "", "bf16": BF16_TAG}.get(precision.name, precision.name)
    enc.features = _states(model, enc.input_ids, pad_id, device, tokens_per_batch, max_texts, desc, spill_dir,
                           compute, tag)
    if enc.pair_ids is not None:
        enc.pair_features = _states(model, enc.pair_ids, pad_id, device, tokens_per_batch, max_texts, desc + " (b)",
                                    spill_dir, compute, tag)
    return enc


def resolve_precision(model, precision: str, device: torch.device) -> Precision:
    """What ``build_features(precision=...)`` really computes in (what a run records it
    used): int8 only on a CPU where an integer kernel beats fp32 on these blocks, bf16 only
    on one that does bf16 natively and faster; ``auto``: bf16 where it wins, int8 where
    only it does, where the CPU lacks ``BF16_TILES`` or where its timing beats bf16's by
    ``INT8_OVERHEAD``; fp32 where neither wins or on a GPU."""
    if device.type != "cpu" or precision == "fp32":
        return FP32
    if precision == "int8":
        kernel = _int8_choice(model).kernel
        return FP32 if kernel is None else Precision("int8", kernel)
    if precision == "bf16":
        return Precision("bf16") if _bf16_choice(model).kernel is not None else FP32
    int8, bf16 = _int8_choice(model), _bf16_choice(model)
    if bf16.kernel is None or int8.kernel is None:
        return Precision("bf16") if bf16.kernel else Precision("int8", int8.kernel) if int8.kernel else FP32
    if BF16_TILES not in machine_info()["flags"]:
        return Precision("int8", int8.kernel)
    if int8.kernel in int8.ms and "bf16" in bf16.ms and INT8_OVERHEAD * int8.ms[int8.kernel] < bf16.ms["bf16"]:
        return Precision("int8", int8.kernel)
    return Precision("bf16")  # also untimed (a busy machine): bf16 needs no scaling passes and rounds less


def _frozen_linears(model) -> list:
    from ..models.int8 import linear_targets

    return [t for block in model.frozen_blocks() for t in linear_targets(block)]


def _int8_choice(model):
    from ..models.int8 import kernel_for

    return kernel_for(_frozen_linears(model))


def _bf16_choice(model):
    from ..models.bf16 import bf16_for

    return bf16_for(_frozen_linears(model))


def _int8_prefix(model, kernel: str):
    """An int8 copy of the frozen blocks on ``kernel``."""
    from ..models.int8 import int8_prefix_copy

    return int8_prefix_copy(model, kernel)


def _bf16_prefix(model):
    from ..models.bf16 import bf16_prefix_copy

    return bf16_prefix_copy(model)


def _states(model, input_ids: list[list[int]], pad_id: int, device: torch.device, tokens_per_batch: int,
            max_texts: int, desc: str, spill_dir: Optional[Path] = None,
            compute: Optional[Callable[[], object]] = None, tag: str = "") -> list[torch.Tensor]:
    """One unpadded (T_i, H) tensor per sequence: views into one flat buffer. ``compute()``
    (default ``model``) runs the frozen blocks; ``tag`` names its precision in the key.
    A decoder computes the tokens every sequence starts with (an instruct model's chat
    frame, a BOS) once, and each sequence only from there on: in fp32, except in a bf16
    copy (its keys and values must be bf16 too)."""
    lengths = Encoded(input_ids).lengths
    hidden_size = model.hf.config.get_text_config().hidden_size
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    path = _memmap_path(model, input_ids, spill_dir, tag)
    flat, spill = _allocate(path, int(offsets[-1]), hidden_size, force_spill=spill_dir is not None)
    if flat is None:  # found complete on disk
        flat = torch.from_numpy(np.memmap(path, dtype=np.float32, mode="c", shape=(int(offsets[-1]), hidden_size)))
    else:
        from ..models.bf16 import is_bf16

        compute = compute() if compute is not None else model
        compute.eval()
        n, head, cache = _prefix(compute if is_bf16(compute) else model, input_ids, device)
        for i in range(len(input_ids) if n else 0):
            flat[offsets[i]:offsets[i] + n] = head
        rest = Encoded([ids[n:] for ids in input_ids])
        for idx in tqdm(sorted_batches(lengths - n, max_texts, budget=tokens_per_batch), desc=desc, unit="batch",
                        leave=False, disable=None):
            b = collate(rest, idx, pad_id, use_features=False)
            with autocast(device):  # bf16 on a GPU; a CPU runs what ``compute`` holds
                h = compute.features(b["input_ids"].to(device), b["attention_mask"].to(device), cache).float().cpu()
            for r, i in enumerate(idx):
                flat[offsets[i] + n:offsets[i + 1]] = h[r, :lengths[i] - n]
            maybe_die("feature-cache")
        if spill is not None:
            _finish(*spill)
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(input_ids))]


def _prefix(model, input_ids: list[list[int]], device: torch.device) -> tuple[int, Optional[torch.Tensor], object]:
    """(n, states (n, H), keys/values) of the n tokens every sequence starts with, in fp32;
    (0, None, None) for encoders, nothing shared, or a model whose forward takes no cache."""
    n = 0 if model.backbone.encoder else shared_prefix(input_ids)
    if not n:
        return 0, None, None
    try:
        with torch.no_grad(), autocast(device):
            head, cache = model.backbone.prefix_cache(model.split, torch.tensor(input_ids[0][:n], device=device))
    except (TypeError, ValueError, AttributeError):  # an architecture without a key/value cache
        return 0, None, None
    return n, head.float().cpu(), cache


def shared_prefix(input_ids: list[list[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one of its own (0 for fewer
    than two sequences: nothing to share)."""
    if len(input_ids) < 2:
        return 0
    first, limit = input_ids[0], min(len(x) for x in input_ids) - 1
    n = 0
    while n < limit and all(x[n] == first[n] for x in input_ids):
        n += 1
    return n


def _memmap_path(model, input_ids: list[list[int]], spill_dir: Optional[Path] = None, tag: str = "") -> Path:
    return (spill_dir or cache_root() / "features") / f"{cache_key(model, input_ids)}{tag and '-' + tag}.f32"


def _allocate(path: Path, n_tokens: int, hidden: int, force_spill: bool = False
              ) -> tuple[Optional[torch.Tensor], Optional[tuple]]:
    """A buffer to fill, and for a disk spill (past MEMORY_LIMIT_BYTES, or forced) what
    ``_finish`` needs to publish it; (None, None) when the complete file is already there."""
    nbytes = n_tokens * hidden * 4
    if nbytes <= MEMORY_LIMIT_BYTES and not force_spill:
        return torch.empty(n_tokens, hidden), None
    if path.exists() and path.stat().st_size == nbytes:
        return None, None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    arr = np.memmap(tmp, dtype=np.float32, mode="w+", shape=(n_tokens, hidden))
    return torch.from_numpy(arr), (arr, tmp, path)


def _finish(arr: np.memmap, tmp: Path, path: Path) -> None:
    """Flush the spill and rename it into place: only a complete file is ever found."""
    arr.flush()
    os.replace(tmp, path)
