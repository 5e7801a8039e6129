"""Frame each text the way an instruct model was trained to read it.

An instruct (chat) model summarises a user turn at the position where its answer would
begin, so for such decoders lmclassify wraps each text as ``<user turn>TEXT<end of
turn><assistant header>`` and the classifier reads that last header token. (On the SMS
spam recipe this moved SmolLM2-135M-Instruct from 96.3 % to 97.3 % test accuracy at the
same hyper-parameters.) The frame lives in the tokenizer's post-processor, so it is
saved in tokenizer.json and plain ``transformers.pipeline`` applies it too.
"""
from __future__ import annotations

from typing import Optional

from tokenizers.processors import TemplateProcessing

TEMPLATES = ("auto", "chat", "none")
_SENTINEL = "\u2063LMC_TEXT\u2063"


def chat_frame(tok) -> Optional[tuple[str, str]]:
    """(prefix, suffix) around one user message, without any default system prompt; None
    when the tokenizer has no chat template or the frame cannot be found."""
    if not getattr(tok, "chat_template", None):
        return None
    try:
        text = tok.apply_chat_template([{"role": "user", "content": _SENTINEL}], tokenize=False,
                                       add_generation_prompt=True)
    except Exception:
        return None
    s = text.find(_SENTINEL)
    role = text.rfind("user", 0, s)
    if s < 0 or role < 0:
        return None
    specials = [t for t in tok.all_special_tokens + [str(t) for t in tok.get_added_vocab()] if t]
    start = max((text.rfind(t, 0, role) for t in specials), default=-1)
    if start < 0:
        return None
    return text[start:s], text[s + len(_SENTINEL):]


def apply_input_template(tok, mode: str, is_encoder: bool) -> str:
    """Install the frame in ``tok`` (in place); returns the mode actually used."""
    if mode not in TEMPLATES:
        raise ValueError(f"input template must be one of {TEMPLATES}")
    if mode == "none" or is_encoder:
        return "none"
    frame = chat_frame(tok)
    if frame is None:
        if mode == "chat":
            from ..errors import LmClassifyError

            raise LmClassifyError("--input-template chat needs a tokenizer with a chat template")
        return "none"
    pre, post = (tok(x, add_special_tokens=False)["input_ids"] for x in frame)
    special = [{"id": name, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids)}
               for name, ids in (("[LMC_PRE]", pre), ("[LMC_POST]", post)) if ids]
    single = " ".join(x for x, ids in (("[LMC_PRE]", pre), ("$A", [1]), ("[LMC_POST]", post)) if ids)
    pair = single.replace("$A", "$A $B:1")
    tok.backend_tokenizer.post_processor = TemplateProcessing(single=single, pair=pair, special_tokens=special)
    return "chat"
