"""Issue 13's encoder benchmarks in one report: domain pretraining (bench/domain_pretrain.py),
sentence-embedding geometry and standardisation (bench/embeddings.py), few labels
(bench/few_labels.py). Each part is its own script with its own results; this one runs them
(``--run``) and writes bench/results/encoders.{json,md} from what they wrote.

    python bench/encoders.py          # gather the three parts' latest results
    python bench/encoders.py --run    # run the three first (hours on 2 CPU cores)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write_results  # noqa: E402

PARTS = {"domain_pretrain": "Domain pretraining (MLM, then the recipe)",
         "embeddings": "Sentence embeddings: anisotropy and standardisation",
         "few_labels": "Few labels: SetFit vs fine-tuning vs frozen logistic head"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the three part scripts first")
    a = ap.parse_args()
    here = Path(__file__).resolve().parent
    if a.run:
        for part in PARTS:
            subprocess.run([sys.executable, str(here / f"{part}.py")], check=True)
    data, sections = {}, ["# Encoders beyond one head (issue 13)"]
    for part, title in PARTS.items():
        js, md = RESULTS / f"{part}.json", RESULTS / f"{part}.md"
        if not js.is_file():
            sections.append(f"## {title}\n\nnot run yet: `python bench/{part}.py`")
            continue
        data[part] = json.loads(js.read_text())
        body = "\n".join(line if not line.startswith("#") else "#" + line for line in md.read_text().splitlines())
        sections.append(f"## {title} (`bench/results/{part}.md`)\n\n{body}")
    path = write_results("encoders", {"parts": data}, "\n\n".join(sections))
    print(f"written {path}")


if __name__ == "__main__":
    main()
