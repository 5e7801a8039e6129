"""The estimator family (scikit-learn contract) and the one loader for model directories."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..tasks import SEQUENCE, TOKEN
from .artifacts import saved_network
from .base import LMEstimator
from .text import TextClassifier
from .tokens import TokenClassifier

ESTIMATORS: dict[str, type[LMEstimator]] = {SEQUENCE: TextClassifier, TOKEN: TokenClassifier}
__all__ = ["LMEstimator", "TextClassifier", "TokenClassifier", "load"]


def load(directory: Union[str, Path], device: str = "auto", quantize: Optional[str] = None) -> LMEstimator:
    """The estimator a model directory holds (``TextClassifier`` or ``TokenClassifier``).

    >>> clf = lmclassify.load("runs/spam")                     # doctest: +SKIP
    >>> clf.predict(["WINNER! claim your prize"])               # doctest: +SKIP
    ['spam']
    """
    directory = Path(directory)
    return ESTIMATORS[saved_network(directory)].load(directory, device=device, quantize=quantize)
