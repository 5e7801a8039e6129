"""CoNLL / IOB files for token classification, and the tag set.

One token per line, its tag in the last column (tab- or space-separated, so CoNLL-2003's
``token POS chunk tag`` works too), a blank line between sentences, ``-DOCSTART-`` lines
skipped. Every problem is one LmClassifyError naming the file and line.

>>> s = parse_conll("Empire\\tB-location\\nState\\tI-location\\n\\nhi\\tO\\n")
>>> s.tokens, s.tags
([['Empire', 'State'], ['hi']], [['B-location', 'I-location'], ['O']])
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import LmClassifyError
from .readers import _read_text

# O, or a chunk prefix and a type: IOB1/IOB2 (B, I) and IOBES (E, S), as seqeval reads them.
_TAG = re.compile(r"^(O|[BIES]-.+)$")


@dataclass
class Sentences:
    """Pre-tokenized sentences with their tags (``tags`` is None for unlabelled input).

    ``lines[i][j]`` is the file line of token j of sentence i, for error messages."""

    tokens: list[list[str]]
    tags: Optional[list[list[str]]] = None
    source: str = ""
    lines: Optional[list[list[int]]] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def labels(self) -> Optional[list[list[str]]]:
        return self.tags

    def inputs(self) -> list[list[str]]:
        """What a token classifier takes: the words of each sentence."""
        return self.tokens

    def where(self, i: int, j: int) -> str:
        """Where word j of sentence i sits in the source, for error messages."""
        return f"line {self.lines[i][j]}" if self.lines else f"sentence {i + 1}"

    def subset(self, indices: Sequence[int]) -> "Sentences":
        pick = lambda xs: None if xs is None else [xs[i] for i in indices]  # noqa: E731
        return Sentences(pick(self.tokens), pick(self.tags), self.source, pick(self.lines))


def parse_conll(text: str, source: str = "<string>", labelled: bool = True) -> Sentences:
    """Parse CoNLL text (see the module docstring). ``labelled=False`` reads the first
    column only, for prediction; then a tag column is optional."""
    tokens, tags, lines = [], [], []
    cur_tok, cur_tag, cur_line = [], [], []

    def flush():
        if cur_tok:
            tokens.append(list(cur_tok))
            tags.append(list(cur_tag))  # empty lists when unlabelled; dropped at the end
            lines.append(list(cur_line))
        cur_tok.clear(), cur_tag.clear(), cur_line.clear()

    for n, raw in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit in a token
        line = raw.removesuffix("\r")
        if not line.strip():  # wnut17's sentence breaks are sometimes a lone tab
            flush()
            continue
        parts = [p for p in (line.split("\t") if "\t" in line else line.split(" ")) if p.strip()]
        if parts[0].strip() == "-DOCSTART-":
            flush()
            continue
        if not labelled:
            cur_tok.append(parts[0].strip())
            cur_line.append(n)
            continue
        if len(parts) < 2:
            raise LmClassifyError(f"{source}, line {n}: token {parts[0].strip()!r} has no tag; "
                                  f"expected 'token<TAB>tag' (IOB, e.g. B-person, I-person, O)")
        tag = parts[-1].strip()
        if not _TAG.match(tag):
            raise LmClassifyError(f"{source}, line {n}: {tag!r} is not an IOB tag "
                                  f"(expected O or a prefix B-/I-/E-/S- and a type, e.g. B-person)")
        cur_tok.append(parts[0].strip())
        cur_tag.append(tag)
        cur_line.append(n)
    flush()
    return Sentences(tokens, tags if labelled else None, source, lines)


def read_conll(path: Union[str, Path]) -> Sentences:
    """Read a CoNLL file; an empty one is an error (there is nothing to learn or score)."""
    path = Path(path)
    s = parse_conll(_read_text(path), str(path))
    if not len(s):
        raise LmClassifyError(f"{path}: no sentences found; expected 'token<TAB>tag' lines, "
                              f"a blank line between sentences")
    return s


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Whitespace pre-tokenization keeping character offsets into ``text``.

    >>> split_words("Empire  State\\tBuilding")
    (['Empire', 'State', 'Building'], [(0, 6), (8, 13), (14, 22)])
    """
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    return [text[a:b] for a, b in spans], spans


def joined_offsets(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The words joined by single spaces, and each word's (start, end) in that string."""
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(words), spans


# ---- the tag set -------------------------------------------------------------------

def _tag_key(tag: str) -> tuple:
    # O first, then by entity type, B before I (E, S after): id2label reads like the scheme.
    return ("", "") if tag == "O" else (tag[2:], tag[0])


def tag_set(tags: Sequence[Sequence[str]]) -> list[str]:
    """All tags seen, in a stable readable order; "O" is always included."""
    seen = {t for sent in tags for t in sent} | {"O"}
    return sorted(seen, key=_tag_key)
