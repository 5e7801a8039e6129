"""Sentence vectors from any model lmclassify can load, and the geometry that makes them
useful: z-scoring each dimension (``Standardizer``), anisotropy and label alignment.

Why standardise: a language model's sentence vectors share a large common direction
(and a few dimensions of huge variance), so the expected cosine of two *random* texts
is far above 0 and cosine similarity mostly measures that shared part. Subtracting the
corpus mean and dividing by each dimension's standard deviation removes it; the mean
cosine of random pairs drops towards 0 (bench/results/embeddings.md).

The vectors come from the project's own pieces: ``models/resolve.py`` + ``models/load.py``
load any base model (built-in name, directory, .gguf), ``models/backbone.py`` runs it,
``models/pooling.py`` pools; a fine-tuned lmclassify directory is read by the estimators'
one loader and embedded by its fine-tuned backbone (and its own pooler, learned or not).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.batching import collate, encode, sorted_batches
from ..errors import LmClassifyError, first_line
from ..models.backbone import Backbone, is_encoder
from ..models.input_template import apply_input_template
from ..models.pooling import Pooler
from ..training.device import pick_device
from .standardize import Standardizer

EMBED_POOLINGS = ("mean", "cls", "last", "max")
DEFAULT_MAX_LENGTH = 256


@dataclass
class Embedder:
    """A backbone, its tokenizer and a pooler: texts in, one float32 vector per text out.

    >>> emb = load_embedder("minilm-l6", pooling="mean")   # doctest: +SKIP
    >>> emb.embed(["A man plays guitar.", "Someone plays a guitar."]).shape
    (2, 384)
    """

    backbone: Backbone
    tokenizer: object
    pooler: nn.Module  # (B, T, H) hidden states + (B, T) mask -> (B, H)
    pooling: str  # what the pooler does: mean | cls | last | max | attention (a fine-tuned query)
    max_length: Optional[int]
    device: torch.device
    model: str = ""
    family: str = ""  # "encoder" | "decoder"
    input_template: str = "none"

    @property
    def dim(self) -> int:
        return int(self.backbone.config.get_text_config().hidden_size)

    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: bool = True) -> np.ndarray:
        """(N, D) float32, in the order of ``texts`` (batches run longest first, so padding is small)."""
        return self.embed_pooled(texts, {self.pooling: self.pooler}, batch_size, progress)[self.pooling]

    @torch.inference_mode()
    def embed_pooled(self, texts: Sequence[str], poolers: dict[str, nn.Module], batch_size: int = 32,
                     progress: bool = True) -> dict[str, np.ndarray]:
        """{name: (N, D) float32} for several poolers from one forward pass per batch
        (comparing poolings costs one pass, not one each)."""
        texts = [str(t) for t in texts]
        out = {name: np.zeros((len(texts), self.dim), dtype=np.float32) for name in poolers}
        if not texts:
            return out
        enc = encode(self.tokenizer, texts, None, self.max_length)
        batches = sorted_batches(enc.lengths, batch_size)
        for idx in tqdm(batches, desc="embed", leave=False, disable=None if progress else True):
            b = collate(enc, idx, self.tokenizer.pad_token_id, use_features=False)
            mask = b["attention_mask"].to(self.device)
            hidden = self.backbone.run(b["input_ids"].to(self.device), mask).float()  # (B, T, H)
            for name, pooler in poolers.items():
                out[name][idx] = pooler(hidden, mask).cpu().numpy()  # (B, H)
        return out


def is_lmclassify_dir(model: Union[str, Path]) -> bool:
    return Path(model).is_dir() and (Path(model) / "lmclassify.json").is_file()


def load_embedder(model: str, pooling: str = "auto", max_length: Optional[int] = None,
                  input_template: str = "auto", device: str = "auto") -> Embedder:
    """An ``Embedder`` for a built-in name, a model directory, a .gguf file or a fine-tuned
    lmclassify directory. ``pooling`` auto: a fine-tuned model's own pooling, else mean for
    encoders (sentence encoders such as all-MiniLM-L6-v2 are trained with it) and last for
    decoders (the token lmclassify's classifier reads)."""
    if pooling != "auto" and pooling not in EMBED_POOLINGS:
        raise LmClassifyError(f"--pooling must be auto or one of {', '.join(EMBED_POOLINGS)}, not {pooling!r}")
    if is_lmclassify_dir(model):
        return _from_model_dir(model, pooling, max_length, device)
    return _from_base_model(model, pooling, max_length, input_template, device)


def _from_base_model(model: str, pooling: str, max_length: Optional[int], input_template: str,
                     device: str) -> Embedder:
    from transformers import AutoModel

    from ..models.load import family, load_config, load_tokenizer, position_limit
    from ..models.resolve import resolve_model

    path = resolve_model(model)
    tok = load_tokenizer(path)
    config = load_config(path)
    encoder = is_encoder(config)
    # The same frame the classifier reads a text in (a chat model: the text as a user turn).
    template = apply_input_template(tok, input_template, encoder)
    try:  # the base model alone: a *ForCausalLM checkpoint loads into it without its LM head
        base = AutoModel.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    except (ValueError, OSError) as e:
        raise LmClassifyError(f"{model}: transformers cannot load its base model ({first_line(e)})") from None
    dev = pick_device(device)
    base = base.to(dev).eval()
    kind = ("mean" if encoder else "last") if pooling == "auto" else pooling
    hidden = config.get_text_config().hidden_size
    return Embedder(Backbone(base), tok, Pooler(kind, hidden).to(dev), kind,
                    _clamped(max_length, position_limit(config, tok)), dev, str(model), family(config), template)


def _from_model_dir(model: str, pooling: str, max_length: Optional[int], device: str) -> Embedder:
    """A fine-tuned lmclassify directory, loaded as ``predict`` loads it; its tokenizer
    carries the input frame it was trained with."""
    from ..estimators import load

    est = load(model, device=device)
    module = est.module_
    own = getattr(module, "pooler", None)  # token models have none: they label every token
    if pooling == "auto" and own is not None:
        kind, pooler = own.kind, own
    else:
        kind = pooling if pooling != "auto" else ("mean" if module.backbone.encoder else "last")
        pooler = Pooler(kind, module.backbone.config.get_text_config().hidden_size).to(est.device_)
    fam = "encoder" if module.backbone.encoder else "decoder"
    return Embedder(module.backbone, est.tokenizer_, pooler, kind, max_length or est.model_config_.max_length,
                    est.device_, str(model), fam, est.input_template_)


def _clamped(max_length: Optional[int], limit: Optional[int]) -> Optional[int]:
    n = max_length or DEFAULT_MAX_LENGTH
    return min(n, limit) if limit else n


# ---- geometry --------------------------------------------------------------------------

def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def random_pairs(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` pairs (i, j) of distinct indices below ``n``, each uniform over ordered pairs."""
    i = rng.integers(0, n, k)
    j = (i + rng.integers(1, n, k)) % n  # never i, every other index equally likely
    return i, j


def anisotropy(X: np.ndarray, n_pairs: int = 10000, seed: int = 123) -> float:
    """Mean cosine of ``n_pairs`` random pairs of distinct rows (seeded): about 0 for
    isotropic vectors, far above 0 when they share a common direction."""
    if len(X) < 2:
        raise LmClassifyError("anisotropy needs at least 2 texts")
    U = _unit(X)
    i, j = random_pairs(len(U), n_pairs, np.random.default_rng(seed))
    return float(np.einsum("kd,kd->k", U[i], U[j]).mean())


def label_alignment(X: np.ndarray, labels: Sequence, n_pairs: int = 10000, seed: int = 123) -> Optional[dict]:
    """Mean cosine of random same-label pairs vs random different-label pairs (seeded), and
    their gap: how much closer a text sits to its own class than to the others. None when
    the labels do not allow both kinds of pair."""
    keys = np.asarray([json.dumps(y, sort_keys=True, default=str) for y in labels])
    if len(keys) != len(X):
        raise ValueError("one label per vector")
    classes, inverse = np.unique(keys, return_inverse=True)
    members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
    sizes = np.array([len(m) for m in members], dtype=np.float64)
    weights = sizes * (sizes - 1)  # ordered same-label pairs per class: each pair equally likely
    if len(classes) < 2 or weights.sum() == 0:
        return None
    rng, U = np.random.default_rng(seed), _unit(X)
    cls = rng.choice(len(classes), n_pairs, p=weights / weights.sum())
    a = rng.integers(0, sizes[cls].astype(np.int64))
    b = (a + rng.integers(1, sizes[cls].astype(np.int64))) % sizes[cls].astype(np.int64)
    si = np.array([members[c][x] for c, x in zip(cls, a)])
    sj = np.array([members[c][x] for c, x in zip(cls, b)])
    di, dj = [], []
    while sum(map(len, di)) < n_pairs:  # uniform random pairs, keeping those across classes
        i, j = random_pairs(len(U), n_pairs, rng)
        keep = inverse[i] != inverse[j]
        di.append(i[keep])
        dj.append(j[keep])
    di, dj = np.concatenate(di)[:n_pairs], np.concatenate(dj)[:n_pairs]
    same = float(np.einsum("kd,kd->k", U[si], U[sj]).mean())
    diff = float(np.einsum("kd,kd->k", U[di], U[dj]).mean())
    return {"same_label": same, "different_label": diff, "gap": same - diff, "classes": len(classes)}


def geometry_report(X: np.ndarray, standardizer: Standardizer, labels: Optional[Sequence] = None,
                    n_pairs: int = 10000, seed: int = 123) -> dict:
    """Anisotropy (and label alignment, given labels) of raw and of z-scored vectors."""
    out = {"pairs": n_pairs, "seed": seed}
    for name, V in (("raw", X), ("standardized", standardizer.transform(X))):
        out[name] = {"anisotropy": anisotropy(V, n_pairs, seed)}
        if labels is not None:
            out[name]["alignment"] = label_alignment(V, labels, n_pairs, seed)
    return out
