"""Jobs: what the CLI (and any other shell) runs, as importable functions that return data."""
from .embed import embed
from .generate import generate
from .pretrain import pretrain
from .train import train
from .use import evaluate, predict
from .zero_shot import zero_shot

__all__ = ["train", "evaluate", "predict", "zero_shot", "embed", "generate", "pretrain"]
