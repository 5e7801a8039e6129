"""lmclassify: turn pretrained language models into text classifiers.

>>> from lmclassify import TextClassifier                                   # doctest: +SKIP
>>> clf = TextClassifier("smollm2-135m", epochs=5).fit(texts, labels)        # doctest: +SKIP
>>> clf.predict(["WINNER!! Claim your prize"]), clf.classes_                # doctest: +SKIP
(['spam'], ['ham', 'spam'])
>>> clf.save("spam-model")                                                  # doctest: +SKIP
"""
from .classifier import TextClassifier
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import LmClassifyError

__version__ = "0.1.0"
__all__ = ["TextClassifier", "RunConfig", "ModelConfig", "DataConfig", "TrainConfig", "LmClassifyError",
           "train", "__version__"]


def train(config: RunConfig, output: str, overwrite: bool = False) -> dict:
    """Run the `train` job (data -> fit -> evaluate -> model directory); returns metrics."""
    from .training.run import run_training

    return run_training(config, output, overwrite=overwrite)
