"""The unit every reader returns and every later stage consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

Label = Union[str, int]


@dataclass
class Examples:
    """Texts with their raw labels (as written in the source: str or int).

    ``labels`` is None for unlabelled input (prediction files).
    """

    texts: list[str]
    labels: Optional[list[Label]] = None
    source: str = ""  # where the rows came from, for error messages
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> "Examples":
        return Examples(
            texts=[self.texts[i] for i in indices],
            labels=None if self.labels is None else [self.labels[i] for i in indices],
            source=self.source,
        )
