"""The unit every reader returns and every later stage consumes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

# As written in the source: a class name or id, a number (regression), or several labels
# (multi-label: a list, or one string joined by a separator that the task splits).
Label = Union[str, int, float, list]


@dataclass
class Examples:
    """Texts with their raw labels, and for sentence-pair data a second text per row.

    ``labels`` is None for unlabelled input (prediction files).
    """

    texts: list[str]
    labels: Optional[list[Label]] = None
    source: str = ""  # where the rows came from, for error messages
    pairs: Optional[list[str]] = None  # the second text of each row (text_pair)

    def __len__(self) -> int:
        return len(self.texts)

    def inputs(self) -> list:
        """What a classifier takes: texts, or (text, text_pair) tuples for pair data."""
        return self.texts if self.pairs is None else list(zip(self.texts, self.pairs))

    def where(self, i: int, j: int = 0) -> str:
        """Where example i sits in the source, for error messages."""
        return f"row {i + 1}"

    def subset(self, indices: Sequence[int]) -> "Examples":
        return Examples(
            texts=[self.texts[i] for i in indices],
            labels=None if self.labels is None else [self.labels[i] for i in indices],
            source=self.source,
            pairs=None if self.pairs is None else [self.pairs[i] for i in indices],
        )


def split_inputs(texts: Sequence) -> tuple[list[str], Optional[list[str]]]:
    """Texts, or (text, text_pair) tuples -> (texts, text_pairs or None).

    >>> split_inputs([("a", "b"), ("c", "d")])
    (['a', 'c'], ['b', 'd'])
    """
    from ..errors import LmClassifyError

    items = list(texts)
    is_pair = [isinstance(t, (tuple, list)) for t in items]
    if not any(is_pair):
        return items, None
    if not all(is_pair) or any(len(t) != 2 for t in items):
        raise LmClassifyError("inputs must be all texts or all (text, text_pair) pairs, not a mix")
    return [t[0] for t in items], [t[1] for t in items]
