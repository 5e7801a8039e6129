"""Where lmclassify reads data and keeps its caches (one place, so tests can redirect both)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def cache_root() -> Path:
    """$LMCLASSIFY_CACHE, else ~/.cache/lmclassify: converted models, features, downloaded data."""
    return Path(os.environ.get("LMCLASSIFY_CACHE") or Path.home() / ".cache" / "lmclassify").expanduser()


def data_root() -> Optional[Path]:
    """$LMCLASSIFY_DATA, else ../shared/data (relative to the working directory) if it exists.

    Data sets are not shipped with the package (several licences forbid it), so they are
    looked up here before anything is downloaded."""
    env = os.environ.get("LMCLASSIFY_DATA")
    if env:
        return Path(env).expanduser()
    local = Path("../shared/data")
    return local.resolve() if local.is_dir() else None
