"""Checking a model directory's files before any library reads them: a missing, truncated or
garbled file is one line naming it, never a library's traceback or, worse, a silent fallback
(a random head, a tokenizer without its vocabulary). Weights are read only from safetensors."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import LmClassifyError
from ..models.hf_layout import TRUE_TYPE_KEY

WEIGHTS, WEIGHTS_INDEX = "model.safetensors", "model.safetensors.index.json"
EXTRA = "lmclassify_extra.safetensors"


def corrupt(path: Path, why: str) -> LmClassifyError:
    return LmClassifyError(f"{path} is corrupt ({why}); the model directory cannot be loaded - copy it again "
                           f"or retrain")


def missing(path: Path) -> LmClassifyError:
    return LmClassifyError(f"{path} is missing; the model directory is incomplete - copy it again or retrain")


def json_object(path: Path) -> dict:
    """A JSON object from ``path``, or one line naming the file: missing, unreadable, not
    UTF-8, not JSON (truncated), or not an object."""
    if not path.is_file():
        raise missing(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise LmClassifyError(f"{path} cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise corrupt(path, f"not UTF-8 text at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise corrupt(path, f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise corrupt(path, f"expected a JSON object, found {type(data).__name__}")
    return data


PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def check_files(directory: Path) -> list[Path]:
    """Every file ``restore`` reads, checked before transformers sees it: one line naming a
    missing, truncated or garbled file instead of a library's traceback (or, worse, a
    silent fallback). Returns the weights files."""
    config = json_object(directory / "config.json")
    if not isinstance(config.get(TRUE_TYPE_KEY, config.get("model_type")), str):
        raise corrupt(directory / "config.json", "no model_type")
    if (directory / WEIGHTS_INDEX).is_file():
        index = json_object(directory / WEIGHTS_INDEX)
        shards = index.get("weight_map")
        if not isinstance(shards, dict) or not shards or not all(isinstance(v, str) for v in shards.values()):
            raise corrupt(directory / WEIGHTS_INDEX, "no weight_map")
        weights = [directory / name for name in sorted(set(shards.values()))]
    elif (directory / WEIGHTS).is_file():
        weights = [directory / WEIGHTS]
    else:
        pickles = [name for name in PICKLES if (directory / name).exists()]
        if pickles:
            raise LmClassifyError(f"{directory / WEIGHTS} is missing and lmclassify loads weights only from "
                                  f"safetensors, not from {pickles[0]} (a pickle can run code when loaded); "
                                  f"convert the weights to safetensors")
        raise missing(directory / WEIGHTS)
    for path in weights + ([directory / EXTRA] if (directory / EXTRA).exists() else []):
        check_safetensors(path)
    return weights


def check_safetensors(path: Path) -> None:
    """A complete safetensors file: an 8-byte header length, a JSON header describing each
    tensor, and exactly the bytes the header promises (a truncated copy, a garbled header or
    an empty file fail here, naming the file). Reads only the header."""
    if not path.is_file():
        raise missing(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise corrupt(path, f"{size} bytes, too short for a safetensors file")
            n = int.from_bytes(head, "little")
            if n > size - 8:
                raise corrupt(path, f"its header claims {n} bytes but the file has {size}: truncated or not "
                                     f"a safetensors file")
            header = json.loads(f.read(n).decode("utf-8"))
    except OSError as e:
        raise LmClassifyError(f"{path} cannot be read ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt(path, "its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise corrupt(path, "its header is not a JSON object")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(x, int) for x in offsets)
                or not isinstance(info.get("dtype"), str) or not isinstance(info.get("shape"), list)):
            raise corrupt(path, f"its header entry for {name!r} is malformed")
        end = max(end, offsets[1])
    if 8 + n + end != size:
        raise corrupt(path, f"{size} bytes where its header describes {8 + n + end}: truncated or padded")


