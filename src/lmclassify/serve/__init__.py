"""``lmclassify serve``: an HTTP shell over trained model directories (FastAPI app,
dynamic batcher, limits); see ``app.py``. Imported lazily, so the other commands never
pay for FastAPI."""
from .limits import ServeOptions

__all__ = ["create_app", "Batcher", "ServeOptions", "ApiError"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app
        return create_app
    if name in ("Batcher", "ApiError"):
        from . import batcher
        return getattr(batcher, name)
    raise AttributeError(name)
