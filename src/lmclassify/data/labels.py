"""Label names <-> ids, stored with the model under their original names and types."""
from __future__ import annotations

from typing import Iterable, Sequence

from ..errors import LmClassifyError


class LabelMap:
    """Sorted classes (ints numerically, strings lexicographically)."""

    def __init__(self, classes: Sequence):
        self.classes = list(classes)
        self._index = {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def fit(cls, labels: Iterable) -> "LabelMap":
        values = list(labels)
        if any(isinstance(v, str) for v in values) and any(not isinstance(v, str) for v in values):
            values = [str(v) for v in values]
        classes = sorted(set(values))
        if len(classes) < 2:
            only = f" {classes[0]!r}" if classes else ""
            raise LmClassifyError(f"only one class{only} in the training data; a classifier needs at least two")
        return cls(classes)

    def __len__(self) -> int:
        return len(self.classes)

    def encode(self, labels: Iterable) -> list[int]:
        out, unseen = [], set()
        str_mode = isinstance(self.classes[0], str)
        for v in labels:
            key = str(v) if str_mode else v
            if key not in self._index and not str_mode and isinstance(v, str) and v.lstrip("-").isdigit():
                key = int(v)
            if key not in self._index:
                unseen.add(str(v))
                continue
            out.append(self._index[key])
        if unseen:
            raise LmClassifyError(
                f"label(s) {', '.join(sorted(unseen))} not seen in the training data "
                f"(known: {', '.join(map(str, self.classes))})")
        return out

    def decode(self, ids: Iterable[int]) -> list:
        return [self.classes[i] for i in ids]

    def id2label(self) -> dict[int, str]:
        return {i: str(c) for i, c in enumerate(self.classes)}

    def label2id(self) -> dict[str, int]:
        return {str(c): i for i, c in enumerate(self.classes)}

    def to_dict(self) -> dict:
        return {"classes": self.classes, "type": "str" if isinstance(self.classes[0], str) else "int"}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelMap":
        conv = str if d.get("type") == "str" else int
        return cls([conv(c) for c in d["classes"]])
