"""Where lmclassify reads data and keeps its caches."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def cache_root() -> Path:
    return Path(os.environ.get("LMCLASSIFY_CACHE") or Path.home() / ".cache" / "lmclassify").expanduser()


def data_root() -> Optional[Path]:
    env = os.environ.get("LMCLASSIFY_DATA")
    if env:
        return Path(env).expanduser()
    local = Path("../shared/data")
    return local.resolve() if local.is_dir() else None
