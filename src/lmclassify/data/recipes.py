"""Built-in data recipes: where a standard data set lives, how to parse, balance and split
it (or its published splits), its task shape and headline metric, and the hyper-parameters
it was tuned with, so `--recipe NAME` reproduces a result."""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..errors import LmClassifyError
from ..paths import cache_root, data_root
from . import published
from .examples import Examples

SMS_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_ZIP_SHA256 = "e0c5bd54da721b0058bfecedfd96dc0be0a323366ca99d4d694817493f47be90"
SMS_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"
SMS_MEMBER = "SMSSpamCollection"
_SMS_HINT = f"set LMCLASSIFY_DATA to a folder holding sms_spam/{SMS_MEMBER}"


Splits = tuple[Examples, Optional[Examples], Optional[Examples]]


@dataclass(frozen=True)
class Recipe:
    """Either ``load`` (one labelled set, balanced and cut by ``split``) or ``load_splits``
    (the set's own train / validation / test; it gets the run's seed for any carving)."""

    name: str
    description: str
    load: Optional[Callable[[], Examples]] = None  # the full labelled set, before balancing and splitting
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    balance: Optional[str] = None  # "undersample" or None
    defaults: dict = field(default_factory=dict)  # model / training options, any config section
    positive_label: Optional[str] = None  # for precision / recall / F1 of a binary task
    load_splits: Optional[Callable[[int], Splits]] = None  # published splits: seed -> (train, val, test)
    task: str = "auto"  # single | multi | regression | token (auto: from the labels)
    metric: tuple[str, str] = ("test", "accuracy")  # (split, metrics key) the recipe is judged by
    model: str = "minilm-l6"  # the model ``defaults`` were tuned with, and the default model

    def options_for(self, same_family: bool) -> dict:
        """The options this recipe sets: all of ``defaults`` for a model of the family they
        were tuned with (``same_family``), else only what belongs to the data
        (``DATA_OPTIONS``), leaving the rest to that family's defaults."""
        if same_family:
            return dict(self.defaults)
        return {k: v for k, v in self.defaults.items() if k in DATA_OPTIONS}


# Options a recipe sets whatever the model: they belong to the data, not to a model family.
DATA_OPTIONS = frozenset({"max_length", "monitor"})


def parse_sms(text: str, source: str = SMS_MEMBER) -> Examples:
    """`label<TAB>text` per line, split on the first tab, quoting off: quotes are part of the
    message (a csv reader with default quoting merges lines and finds 5,572 rows, not 5,574)."""
    texts, labels = [], []
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): it also cuts at U+2028 etc.
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        label, sep, body = line.partition("\t")
        if not sep or not label:
            raise LmClassifyError(f"{source}, line {n}: expected 'label<TAB>text'; {_SMS_HINT}")
        texts.append(body)
        labels.append(label)
    return Examples(texts, labels, source)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(target: Path, data: bytes) -> None:
    """Never leave a half-written file where a later run would trust it."""
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LmClassifyError(f"cannot write {target} ({e}); set LMCLASSIFY_CACHE to a writable folder") from None


def _download_sms(target: Path) -> bytes:
    """Fetch the UCI archive, check both checksums, and keep the extracted file at ``target``."""
    try:
        with urllib.request.urlopen(SMS_URL, timeout=20) as r:
            blob = r.read()
    except (OSError, http.client.HTTPException, ValueError) as e:  # URLError and timeouts are OSError
        raise LmClassifyError(f"SMS spam data not found locally and downloading {SMS_URL} failed "
                              f"({e}); {_SMS_HINT}") from None
    if _sha256(blob) != SMS_ZIP_SHA256:
        raise LmClassifyError(f"the archive downloaded from {SMS_URL} has an unexpected sha256; {_SMS_HINT}")
    try:
        data = zipfile.ZipFile(io.BytesIO(blob)).read(SMS_MEMBER)
    except (zipfile.BadZipFile, KeyError) as e:
        raise LmClassifyError(f"cannot extract {SMS_MEMBER} from {SMS_URL} ({e}); {_SMS_HINT}") from None
    if _sha256(data) != SMS_SHA256:
        raise LmClassifyError(f"{SMS_MEMBER} in {SMS_URL} has an unexpected sha256; {_SMS_HINT}")
    _write_atomic(target, data)
    return data


def sms_spam_path() -> Optional[Path]:
    """The local SMSSpamCollection under LMCLASSIFY_DATA (or ../shared/data), if present."""
    root = data_root()
    p = root / "sms_spam" / SMS_MEMBER if root else None
    return p if p is not None and p.is_file() else None


def load_sms_spam() -> Examples:
    """The UCI SMS Spam Collection: 5,574 messages, 4,827 ham / 747 spam.

    Looked up locally first, then in the cache, and downloaded (checksummed) as a last resort."""
    local = sms_spam_path()
    cached = cache_root() / "data" / "sms_spam" / SMS_MEMBER
    if local is not None:
        data, src = local.read_bytes(), local
        if _sha256(data) != SMS_SHA256:
            # A user may have edited or re-saved it; use it, but say results may not match.
            warnings.warn(f"{local} differs from the published {SMS_MEMBER} (sha256 mismatch); "
                          f"results may not match the reference numbers", stacklevel=2)
    elif cached.is_file() and _sha256(cached.read_bytes()) == SMS_SHA256:
        data, src = cached.read_bytes(), cached
    else:
        data, src = _download_sms(cached), cached
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LmClassifyError(f"{src} is not UTF-8 (undecodable byte at offset {e.start}); {_SMS_HINT}") from None
    return parse_sms(text, str(src))


# Options for the default encoder (minilm-l6), chosen with bench/tasks.py on a 2-core CPU.
# Each recipe keeps the weights of the epoch best on its own metric on validation: on RTE,
# validation loss rises while accuracy still climbs (the model grows confident), and
# val_loss would keep the first epoch.
_ENCODER = {"batch_size": 32, "learning_rate": 1e-4, "weight_decay": 0.01, "schedule": "linear",
            "warmup_ratio": 0.1}

RECIPES: dict[str, Recipe] = {
    "sms-spam": Recipe(
        name="sms-spam",
        description="UCI SMS Spam Collection, balanced to 747 ham / 747 spam, split 70/10/20 "
                    "(1,045 / 149 / 300), as in Raschka's LLMs-from-scratch ch. 6",
        load=load_sms_spam,
        split=(0.7, 0.1, 0.2),
        balance="undersample",
        defaults={"train_layers": 1, "epochs": 5, "batch_size": 8, "learning_rate": 5e-5, "weight_decay": 0.1},
        positive_label="spam", model="smollm2-135m",
    ),
    "sst2": Recipe(
        name="sst2", task="single", metric=("test", "accuracy"), positive_label="positive",
        description="SST-2 sentiment, full sentences (stsa.binary): train on the 6,920 stsa train sentences "
                    "(not GLUE's 67k phrases), validate on dev 872, test 1,821",
        load_splits=published.sst2, defaults={**_ENCODER, "monitor": "val_accuracy", "epochs": 2, "max_length": 64},
    ),
    "trec": Recipe(
        name="trec", task="single", metric=("test", "accuracy"),
        description="TREC question classification, 6 coarse classes: train 4,907 / dev 545 (10 % of "
                    "TREC.train, carved with the seed) / test 500",
        load_splits=published.trec, defaults={**_ENCODER, "monitor": "val_accuracy", "epochs": 3, "max_length": 48},
    ),
    "mrpc": Recipe(
        name="mrpc", task="single", metric=("validation", "f1"), positive_label="equivalent",
        description="MRPC paraphrase pairs (GLUE): train 3,668 / dev 408 / test 1,725 (msr_paraphrase_test); "
                    "scored by F1 of 'equivalent' on dev",
        load_splits=published.mrpc, defaults={**_ENCODER, "monitor": "val_f1", "epochs": 3, "max_length": 128},
    ),
    "rte": Recipe(
        name="rte", task="single", metric=("validation", "accuracy"), positive_label="entailment",
        description="RTE entailment pairs (GLUE): train 2,490 / dev 277 (test unlabelled); scored by "
                    "dev accuracy",
        load_splits=published.rte, defaults={**_ENCODER, "monitor": "val_accuracy", "epochs": 3, "max_length": 128},
    ),
    "stsb": Recipe(
        name="stsb", task="regression", metric=("validation", "pearson"),
        description="STS-B sentence similarity 0-5 (GLUE): train 5,749 / dev 1,500 / test 1,379 "
                    "(original/sts-test.tsv); scored by Pearson r on dev",
        load_splits=published.stsb, defaults={**_ENCODER, "monitor": "val_pearson", "epochs": 3, "max_length": 128},
    ),
    "goemotions": Recipe(
        name="goemotions", task="multi", metric=("test", "f1_macro"),
        description="GoEmotions, 28 emotions, multi-label: train 43,410 / dev 5,426 / test 5,427; "
                    "per-label thresholds tuned on dev; scored by macro F1 on test",
        load_splits=published.goemotions, defaults={**_ENCODER, "monitor": "val_f1_macro", "epochs": 1, "max_length": 64},
    ),
    "wnut17": Recipe(
        name="wnut17", task="token", metric=("test", "entity_f1"),
        description="WNUT 2017 emerging entities (6 types, IOB2): train 3,394 / dev 1,009 / test 1,287 "
                    "sentences; scored by entity-level F1 on test",
        load_splits=published.wnut17,
        # 3 epochs of the top two blocks (the rest cached): test entity F1 0.41 in tuning;
        # the weights kept are those best by entity F1 on dev, the recipe's own metric.
        defaults={"train_layers": 2, "max_length": 128, "epochs": 3, "batch_size": 16, "learning_rate": 2e-4,
                  "weight_decay": 0.01, "schedule": "linear", "warmup_ratio": 0.1, "monitor": "val_entity_f1"},
    ),
}


def get_recipe(name: str) -> Recipe:
    """The named recipe, or an error listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise LmClassifyError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}") from None
