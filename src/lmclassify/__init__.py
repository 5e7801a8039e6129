"""lmclassify: turn pretrained language models into text classifiers.

>>> import lmclassify                                                        # doctest: +SKIP
>>> clf = lmclassify.TextClassifier("smollm2-135m", epochs=5).fit(texts, labels)  # doctest: +SKIP
>>> clf.predict(["WINNER!! Claim your prize"]), clf.classes_                # doctest: +SKIP
(['spam'], ['ham', 'spam'])
>>> clf.save("spam-model"); lmclassify.load("spam-model")                   # doctest: +SKIP
>>> lmclassify.train(lmclassify.RunConfig(data=lmclassify.DataConfig(recipe="sms-spam")), "runs/spam")  # doctest: +SKIP
"""
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import LmClassifyError
from .estimators import TextClassifier, TokenClassifier, load
from .jobs import evaluate, predict, train, zero_shot

__version__ = "0.1.0"
__all__ = ["TextClassifier", "TokenClassifier", "load", "train", "evaluate", "predict", "zero_shot",
           "RunConfig", "ModelConfig", "DataConfig", "TrainConfig", "LmClassifyError", "__version__"]
