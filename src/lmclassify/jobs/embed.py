"""The `embed` job: one vector per text of a file, from any model (built-in, directory,
.gguf, fine-tuned lmclassify directory), optionally z-scored, written as .npy or .parquet,
with the geometry report (anisotropy before/after standardisation, label alignment)."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from ..config import EmbedConfig
from ..data.readers import read_examples
from ..errors import LmClassifyError
from ..inference.embeddings import Standardizer, geometry_report, load_embedder

PathLike = Union[str, Path]
OUTPUT_SUFFIXES = (".npy", ".parquet")


def stats_path_for(output: PathLike) -> Path:
    """Where ``--standardize`` saves the stats it fits: ``emb.npy`` -> ``emb.stats.json``."""
    output = Path(output)
    return output.with_name(output.stem + ".stats.json")


def _check_target(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise LmClassifyError(f"{path} is a directory; name a file to write")
    if path.exists() and not overwrite:
        raise LmClassifyError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise LmClassifyError(f"cannot write {path}: {path.parent} is not an existing folder")


def _read(data: PathLike, text_column: str, label_column: Optional[str], want_labels: bool):
    """The texts, and their labels when asked for and the file has them (a label column
    named explicitly must exist; the default 'label' may be absent)."""
    ex = read_examples(data, text_column, require_labels=False)
    labels = None
    if want_labels:
        try:
            labels = read_examples(data, text_column, label_column or "label").labels
        except LmClassifyError:
            if label_column:
                raise
    return ex.texts, labels


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary sibling and rename: a failure never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_embeddings(path: PathLike, X: np.ndarray, texts: list[str]) -> Path:
    """``.npy``: the (N, D) float32 matrix; ``.parquet``: a ``text`` column and an
    ``embedding`` list<float32> column, one row per text."""
    path = Path(path)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if path.suffix.lower() == ".npy":
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a name
                np.save(f, X)
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise LmClassifyError("writing Parquet needs pyarrow (pip install pyarrow), or write .npy") from None
        offsets = pa.array(np.arange(0, X.size + 1, X.shape[1], dtype=np.int64))
        column = pa.LargeListArray.from_arrays(offsets, pa.array(X.reshape(-1)))
        table = pa.table({"text": pa.array(texts, pa.string()), "embedding": column})

        def save(tmp: Path) -> None:
            pq.write_table(table, tmp)
    _write_atomic(path, save)
    return path


def embed(model: str, data: PathLike, output: Optional[PathLike] = None, *, options: Optional[EmbedConfig] = None,
          text_column: str = "text", label_column: Optional[str] = None, max_length: Optional[int] = None,
          input_template: str = "auto", device: str = "auto", seed: int = 123, overwrite: bool = False,
          progress: bool = True) -> dict:
    """Embed every text of ``data``; write the vectors to ``output`` (.npy or .parquet) when given.

    Returns ``{"model", "pooling", "n", "dim", "embeddings", "standardized", "stats",
    "output", "report", "seconds"}``; ``embeddings`` is what was written (z-scored with
    ``options.standardize``). Stats are fit on this data and saved to ``OUTPUT.stats.json``,
    or loaded from ``options.stats``.

    >>> r = embed("minilm-l6", "texts.csv", "emb.npy", options=EmbedConfig(standardize=True))  # doctest: +SKIP
    """
    o = options or EmbedConfig()
    o.check()
    if max_length is not None and not (isinstance(max_length, int) and max_length >= 2):
        raise LmClassifyError(f"--max-length must be a whole number >= 2, not {max_length!r}")
    standardize = o.standardize or o.stats is not None
    targets = []
    if output is not None:
        output = Path(output)
        if output.suffix.lower() not in OUTPUT_SUFFIXES:
            raise LmClassifyError(f"{output}: write embeddings as .npy (a float32 N x D matrix) or .parquet "
                                  f"(text and embedding columns)")
        targets.append(output)
        if standardize and o.stats is None:
            targets.append(stats_path_for(output))
    for t in targets:  # before any model is loaded
        _check_target(t, overwrite)
    loaded = Standardizer.load(o.stats) if o.stats is not None else None
    texts, labels = _read(data, text_column, label_column, o.report)

    t0 = time.perf_counter()
    embedder = load_embedder(model, o.pooling, max_length, input_template, device)
    X = embedder.embed(texts, o.batch_size, progress=progress)
    seconds = time.perf_counter() - t0
    meta = {"model": str(model), "pooling": embedder.pooling}
    if loaded is not None:
        stale = {k: (loaded.meta.get(k), v) for k, v in meta.items() if loaded.meta.get(k) not in (None, v)}
        if stale:
            warnings.warn(f"{o.stats} was fit with " + ", ".join(f"{k} {a!r}" for k, (a, _) in stale.items())
                          + "; these vectors come from " + ", ".join(f"{k} {b!r}" for k, (_, b) in stale.items()))
    stats = loaded or (Standardizer(meta=meta).fit(X) if standardize or o.report else None)
    Z = stats.transform(X) if standardize else X
    report = geometry_report(X, stats, labels, o.report_pairs, seed) if o.report else None
    stats_file = None
    if output is not None:
        write_embeddings(output, Z, texts)
        if standardize and o.stats is None:
            stats_file = str(stats.save(stats_path_for(output)))
    return {"model": str(model), "pooling": embedder.pooling, "family": embedder.family,
            "input_template": embedder.input_template, "max_length": embedder.max_length,
            "n": int(X.shape[0]), "dim": int(X.shape[1]), "embeddings": Z, "standardized": standardize,
            "stats": stats_file or (str(o.stats) if o.stats else None),
            "stats_source": "loaded" if loaded is not None else ("fit" if standardize else None),
            "output": str(output) if output is not None else None, "report": report, "seconds": seconds}
