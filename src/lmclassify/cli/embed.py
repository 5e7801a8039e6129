"""`lmclassify embed MODEL_OR_DIR --data FILE --output emb.npy|.parquet`: one vector per text
from any model or fine-tuned model directory; `--standardize` z-scores them (stats saved
beside the output, or loaded with `--stats`), `--report` prints their geometry."""
from __future__ import annotations

import argparse

from ..config import DataConfig, EmbedConfig, ModelConfig, TrainConfig
from .options import add_field_options, check_output, section_values


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="sentence vectors from any model (.npy or .parquet)", description=__doc__)
    p.add_argument("model", metavar="MODEL_OR_DIR",
                   help="built-in name (minilm-l6, smollm2-135m), model directory, .gguf file or a directory "
                        "`lmclassify train` wrote")
    p.add_argument("--data", required=True, help="CSV/TSV/JSONL/Parquet (by --text-column) or TXT (one text per line)")
    p.add_argument("--output", "-o", help="emb.npy (float32 N x D) or emb.parquet (text, embedding); "
                                          "optional with --report")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (and stats file)")
    add_field_options(p.add_argument_group("embedding"), "embed", EmbedConfig)
    g = p.add_argument_group("input")
    add_field_options(g, "data", DataConfig, ("text_column", "label_column"))
    add_field_options(g, "model", ModelConfig, ("max_length", "input_template"))
    add_field_options(g, "train", TrainConfig, ("device", "seed"))
    p.set_defaults(func=run)


def _print_report(r: dict) -> None:
    raw, z = r["raw"], r["standardized"]
    print(f"anisotropy (mean cosine of {r['pairs']} random pairs): raw {raw['anisotropy']:.4f} -> "
          f"standardized {z['anisotropy']:.4f}")
    if raw.get("alignment"):
        for name, v in (("raw", raw["alignment"]), ("standardized", z["alignment"])):
            print(f"label alignment, {name}: same-label {v['same_label']:.4f}, different-label "
                  f"{v['different_label']:.4f}, gap {v['gap']:.4f} ({v['classes']} classes)")


def run(a: argparse.Namespace) -> int:
    from ..errors import LmClassifyError
    from ..jobs.embed import embed

    o = EmbedConfig(**section_values(a, "embed"))
    if not a.output and not o.report:
        raise LmClassifyError("nothing to do: pass --output FILE (.npy or .parquet), --report, or both")
    check_output(a.output, a.overwrite)
    data, model, train = (section_values(a, s) for s in ("data", "model", "train"))
    dc, mc, tc = DataConfig(**data), ModelConfig(**model), TrainConfig(**train)
    r = embed(a.model, a.data, a.output, options=o, text_column=dc.text_column,
              label_column=data.get("label_column"), max_length=mc.max_length, input_template=mc.input_template,
              device=tc.device, seed=tc.seed, overwrite=a.overwrite)
    what = "standardized " if r["standardized"] else ""
    where = f" -> {r['output']}" if r["output"] else ""
    print(f"embedded {r['n']} texts with {r['model']} ({r['pooling']} pooling): {what}{r['n']} x {r['dim']}{where}")
    if r["stats_source"] == "fit" and r["stats"]:
        print(f"standardisation stats (mean, std per dimension) -> {r['stats']}")
    elif r["stats_source"] == "loaded":
        print(f"standardized with the stats in {r['stats']}")
    if r["report"]:
        _print_report(r["report"])
    return 0
