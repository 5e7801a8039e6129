"""Built-in data recipes: where a standard set lives, how to parse and split it, and the
hyper-parameters it was published with."""
from __future__ import annotations

import hashlib
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
from .examples import Examples

SMS_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_ZIP_SHA256 = "e0c5bd54da721b0058bfecedfd96dc0be0a323366ca99d4d694817493f47be90"
SMS_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    load: Callable[[], Examples]
    split: tuple = (0.7, 0.1, 0.2)
    balance: Optional[str] = None
    defaults: dict = field(default_factory=dict)
    positive_label: Optional[str] = None


def parse_sms(text: str, source: str = "SMSSpamCollection") -> Examples:
    """`label<TAB>text` per line, split on the first tab, no quoting (quotes are text)."""
    texts, labels = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label, sep, body = line.partition("\t")
        if not sep:
            raise LmClassifyError(f"{source}, line {n}: expected 'label<TAB>text'")
        texts.append(body)
        labels.append(label)
    return Examples(texts, labels, source)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_sms(target: Path) -> bytes:
    try:
        with urllib.request.urlopen(SMS_URL, timeout=20) as r:
            blob = r.read()
    except Exception as e:
        raise LmClassifyError(f"SMS spam data not found locally and the download failed ({e}); set "
                              f"LMCLASSIFY_DATA to a folder holding sms_spam/SMSSpamCollection") from None
    if _sha256(blob) != SMS_ZIP_SHA256:
        raise LmClassifyError("downloaded SMS spam archive has the wrong sha256; set LMCLASSIFY_DATA "
                              "to a folder holding sms_spam/SMSSpamCollection")
    data = zipfile.ZipFile(io.BytesIO(blob)).read("SMSSpamCollection")
    if _sha256(data) != SMS_SHA256:
        raise LmClassifyError("SMSSpamCollection inside the archive has the wrong sha256")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return data


def load_sms_spam() -> Examples:
    """The UCI SMS Spam Collection: 5,574 messages, 4,827 ham / 747 spam."""
    root = data_root()
    local = root / "sms_spam" / "SMSSpamCollection" if root else None
    cached = cache_root() / "data" / "sms_spam" / "SMSSpamCollection"
    if local is not None and local.is_file():
        data = local.read_bytes()
        if _sha256(data) != SMS_SHA256:
            warnings.warn(f"{local} differs from the published SMSSpamCollection (sha256 mismatch)")
        src = str(local)
    elif cached.is_file() and _sha256(cached.read_bytes()) == SMS_SHA256:
        data, src = cached.read_bytes(), str(cached)
    else:
        data, src = _download_sms(cached), SMS_URL
    return parse_sms(data.decode("utf-8"), src)


RECIPES = {
    "sms-spam": Recipe(
        "sms-spam", "UCI SMS Spam Collection, balanced 747/747, split 70/10/20 (Raschka ch. 6)",
        load_sms_spam, (0.7, 0.1, 0.2), "undersample",
        {"train_layers": 1, "epochs": 5, "batch_size": 8, "learning_rate": 5e-5, "weight_decay": 0.1},
        positive_label="spam"),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise LmClassifyError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    return RECIPES[name]
