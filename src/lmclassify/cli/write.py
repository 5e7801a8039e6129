"""Writing a command's output file: whole or not at all."""
from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str, text: str) -> None:
    """Write via a temporary sibling and rename, so a failure never leaves half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        Path(tmp).write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
