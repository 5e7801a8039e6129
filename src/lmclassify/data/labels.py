"""Label values <-> class ids, saved with the model under their original names and types,
so predictions come back as the user wrote the labels (1 stays 1, "spam" stays "spam")."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..errors import LmClassifyError
from .examples import Label

_SHOW = 10  # how many labels an error message lists before "..."


def _listing(values: Sequence) -> str:
    shown = ", ".join(repr(v) for v in values[:_SHOW])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOW else "")


class LabelMap:
    """Sorted classes (ints numerically, strings lexicographically); id = position."""

    def __init__(self, classes: Sequence[Label]):
        self.classes: list[Label] = list(classes)
        self._index = {c: i for i, c in enumerate(self.classes)}
        if len(self._index) != len(self.classes):
            raise ValueError(f"duplicate classes in {self.classes!r}")
        self._str_mode = any(isinstance(c, str) for c in self.classes)

    @classmethod
    def fit(cls, labels: Iterable[Label]) -> "LabelMap":
        """The classes seen in training labels. Mixed int/str labels all become strings:
        there is no order between 1 and "spam", and "1" in one file may be 1 in another."""
        values = list(labels)
        if any(isinstance(v, str) for v in values):
            values = [str(v) for v in values]
        classes = sorted(set(values))
        if not classes:
            raise LmClassifyError("no labels in the training data; a classifier needs at least two classes")
        if len(classes) < 2:
            raise LmClassifyError(f"only one class {classes[0]!r} in the training data; "
                                  f"a classifier needs at least two")
        return cls(classes)

    def __len__(self) -> int:
        return len(self.classes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMap) and self.classes == other.classes

    def __repr__(self) -> str:
        return f"LabelMap({self.classes!r})"

    def _key(self, v: Any) -> Any:
        # Files disagree on types (JSONL 1 vs a CSV column holding "spam"): match by value.
        if self._str_mode:
            return str(v)
        if isinstance(v, str) and v.strip().lstrip("+-").isdecimal():
            return int(v)
        return v

    def encode(self, labels: Iterable[Label]) -> list[int]:
        """Class ids; every label must be a known class (e.g. a test label unseen in training)."""
        out: list[int] = []
        unseen: dict[str, None] = {}  # ordered set, first-seen order
        for v in labels:
            i = self._index.get(self._key(v))
            if i is None:
                unseen[v] = None
            else:
                out.append(i)
        if unseen:
            raise LmClassifyError(f"label(s) {_listing(list(unseen))} not seen in the training data "
                                  f"(known classes: {_listing(self.classes)}); "
                                  f"add examples of them to the training data or drop those rows")
        return out

    def decode(self, ids: Iterable[int]) -> list[Label]:
        return [self.classes[int(i)] for i in ids]

    def id2label(self) -> dict[int, str]:
        """For a transformers config.json (which wants string names)."""
        return {i: str(c) for i, c in enumerate(self.classes)}

    def label2id(self) -> dict[str, int]:
        return {str(c): i for i, c in enumerate(self.classes)}

    def to_dict(self) -> dict:
        """JSON-safe; ``type`` keeps 1 and "1" apart across a save/load."""
        return {"classes": list(self.classes), "type": "str" if self._str_mode else "int"}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelMap":
        kind = d.get("type") or ("str" if any(isinstance(c, str) for c in d["classes"]) else "int")
        if kind not in ("str", "int"):
            raise LmClassifyError(f"unknown label type {kind!r} in a saved label map (expected 'str' or 'int')")
        conv = str if kind == "str" else int
        try:
            return cls([conv(c) for c in d["classes"]])
        except (ValueError, TypeError):
            raise LmClassifyError(f"saved label map is corrupt: classes {d['classes']!r} are not all {kind}") \
                from None
