"""`lmclassify generate MODEL --prompt TEXT`: a short continuation from any decoder (built-in,
.gguf, directory), greedy by default: check that the weights loaded before fine-tuning them."""
from __future__ import annotations

import argparse

from ..config import GenerateConfig, ModelConfig, TrainConfig
from .options import add_field_options, section_values


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a decoder (checks its weights)",
                       description=__doc__)
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="built-in name, .gguf file or model directory (default: smollm2-135m)")
    add_field_options(p.add_argument_group("generation"), "generate", GenerateConfig)
    add_field_options(p, "model", ModelConfig, ("input_template",))
    add_field_options(p, "train", TrainConfig, ("device", "seed"))
    p.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    import json

    from ..jobs.generate import generate
    from ..models.resolve import DEFAULT_DECODER

    o = GenerateConfig(**section_values(a, "generate"))
    mc, tc = ModelConfig(**section_values(a, "model")), TrainConfig(**section_values(a, "train"))
    r = generate(a.model or DEFAULT_DECODER, options=o, input_template=mc.input_template, seed=tc.seed,
                 device=tc.device)
    if a.json:
        print(json.dumps(r, ensure_ascii=False))
    else:
        print(r["text"])
    return 0
