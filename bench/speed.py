"""Side-by-side training speed on the SMS spam recipe (default decoder, same split, same
frozen parameters, epochs, batch size and learning rate):

1. lmclassify with `--feature-precision fp32` (feature cache, the chat frame's shared
   prefix computed once, length-grouped batches), `lmclassify_int8_cache` (the default
   for decoders: the training split's cache computed by an int8 copy of the frozen
   blocks) and `lmclassify_bf16_cache` (that cache computed by a bf16 copy of the
   embeddings and frozen blocks, where the CPU does bf16 natively: AMX);
   `lmclassify_defaults`: the cache precision left to its
   default (auto), as a user gets it;
2. transformers Trainer (AutoModelForSequenceClassification, DataCollatorWithPadding,
   group_by_length);
3. the book's loop (Raschka ch. 6) reimplemented faithfully: every text padded to the
   longest training text, no attention mask, last position read, full forward of the
   frozen layers every step, evaluation every 50 steps and each epoch.

Both keep the final weights (lmclassify with keep_best=False, as the Trainer does here);
`--seed` changes the training seed of every contender, not the split.
Each contender runs in its own process so its peak RSS is its own. Also: inference
texts/s against transformers.pipeline on the same trained model, and time per epoch for
1k/4k/16k SST-2 phrases. Writes bench/results/speed.json and speed.md.

    python bench/speed.py                # 1 and 5 epochs side by side (~60 min on 2 cores)
    python bench/speed.py --epochs 1     # one epoch, quickly
    python bench/speed.py --only lmclassify,lmclassify_int8_cache,hf_trainer
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, peak_rss_mb, run_child, spam_split, write_results  # noqa: E402

import torch  # noqa: E402

MODEL = "smollm2-135m"
LR, WD, BS, SEED, MAXLEN = 5e-5, 0.1, 8, 123, 256  # SEED draws the recipe's split
TRAIN_SEED = SEED  # initialisation and batch order: --seed changes only this


def _data():
    """The model path, its plain tokenizer and the recipe split as (token ids, label ids)
    per split: what the two baselines train on."""
    from lmclassify.data.labels import LabelMap
    from lmclassify.models.load import load_tokenizer
    from lmclassify.models.resolve import resolve_model

    path = resolve_model(MODEL)
    tok = load_tokenizer(path)
    splits = spam_split(SEED)
    lm = LabelMap.fit(splits[0].labels)
    enc = lambda ex: [tok(t, truncation=True, max_length=MAXLEN)["input_ids"] for t in ex.texts]  # noqa: E731
    return path, tok, [(enc(s), lm.encode(s.labels)) for s in splits]


def _hf_model(path, tok):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(TRAIN_SEED)
    m = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, pad_token_id=tok.pad_token_id,
                                                           dtype=torch.float32)
    from lmclassify.models.backbone import Backbone

    bb = Backbone(m.base_model)
    for p in m.parameters():
        p.requires_grad_(False)
    for mod in (bb.layers[-1], bb.final_norm, m.score):
        for p in mod.parameters():
            p.requires_grad_(True)
    return m


def contender_lmclassify(epochs: int, feature_precision: str | None = "fp32") -> dict:
    from lmclassify import TextClassifier

    train, val, test = spam_split(SEED)
    # keep_best=False: the final weights, the Trainer's rule here (its load_best_model_at_end is
    # off). lmclassify's default restores the epoch of least validation loss, which on this
    # 149-text validation split cost 4 test texts on training seed 2 (and 0 on 123).
    clf = TextClassifier(MODEL, epochs=epochs, batch_size=BS, learning_rate=LR, weight_decay=WD, seed=TRAIN_SEED,
                         feature_precision=feature_precision, keep_best=False,
                         progress=False).fit(train.texts, train.labels, validation=(val.texts, val.labels))
    acc = clf.evaluate(test.texts, test.labels, split="test")["accuracy"]
    n_tokens = clf._encoded["train"].n_tokens
    out = {"train_seconds": clf.train_seconds_, "test_accuracy": acc, "train_tokens": n_tokens,
           "val_tokens": clf._encoded["validation"].n_tokens, "peak_rss_mb": peak_rss_mb(),
           "feature_precision": clf.train_config_.feature_precision}
    if feature_precision == "fp32":  # inference is the same model either way: measured once
        out.update(_inference(clf, test))
    return out


def contender_lmclassify_int8_cache(epochs: int) -> dict:
    """lmclassify with --feature-precision int8: the training split's cache in int8."""
    return contender_lmclassify(epochs, "int8")


def contender_lmclassify_bf16_cache(epochs: int) -> dict:
    """lmclassify with --feature-precision bf16: the training split's cache under CPU bf16
    autocast (fp32 where the CPU lacks native bf16: the record says which ran)."""
    return contender_lmclassify(epochs, "bf16")


def contender_lmclassify_defaults(epochs: int) -> dict:
    """lmclassify as a user gets it: --feature-precision left to its decoder default (auto:
    the record says what ran on this CPU)."""
    return contender_lmclassify(epochs, None)


def _inference(clf, test) -> dict:
    """Texts/s of lmclassify predict vs transformers.pipeline on the same saved model."""
    from transformers import pipeline

    from lmclassify import TextClassifier

    with tempfile.TemporaryDirectory() as d:
        clf.save(Path(d) / "m")
        ours = TextClassifier.load(Path(d) / "m", device="cpu")
        ours.train_config_.eval_batch_size = BS
        pipe = pipeline("text-classification", model=str(Path(d) / "m"), device="cpu", batch_size=BS)
        ours.predict(test.texts[:8]); pipe(test.texts[:8], truncation=True)  # warm-up
        t0 = time.perf_counter(); ours_labels = ours.predict(test.texts); t_ours = time.perf_counter() - t0
        t0 = time.perf_counter(); theirs = pipe(test.texts, truncation=True); t_pipe = time.perf_counter() - t0
        q = TextClassifier.load(Path(d) / "m", device="cpu", quantize="int8")
        q.train_config_.eval_batch_size = BS
        t0 = time.perf_counter(); q_labels = q.predict(test.texts); t_q = time.perf_counter() - t0
    agree = sum(str(a) == b["label"] for a, b in zip(ours_labels, theirs)) / len(test)
    acc = lambda labels: sum(str(a) == str(b) for a, b in zip(labels, test.labels)) / len(test)  # noqa: E731
    return {"predict_texts_per_second": len(test) / t_ours, "pipeline_texts_per_second": len(test) / t_pipe,
            "pipeline_label_agreement": agree, "int8_texts_per_second": len(test) / t_q,
            "int8_test_accuracy": acc(q_labels), "fp32_test_accuracy": acc(ours_labels),
            "int8_fp32_label_agreement": sum(a == b for a, b in zip(q_labels, ours_labels)) / len(test)}


def contender_hf_trainer(epochs: int) -> dict:
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    path, tok, ((tr, trl), (va, val_l), (te, tel)) = _data()
    ds = lambda ids, labs: [{"input_ids": i, "attention_mask": [1] * len(i), "labels": y} for i, y in zip(ids, labs)]  # noqa: E731
    model = _hf_model(path, tok)
    with tempfile.TemporaryDirectory() as d:
        args = TrainingArguments(output_dir=d, per_device_train_batch_size=BS, per_device_eval_batch_size=BS,
                                 num_train_epochs=epochs, learning_rate=LR, weight_decay=WD,
                                 lr_scheduler_type="constant", train_sampling_strategy="group_by_length",
                                 eval_strategy="epoch", save_strategy="no", report_to="none", seed=TRAIN_SEED,
                                 use_cpu=True, disable_tqdm=True, logging_strategy="no", dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=ds(tr, trl), eval_dataset=ds(va, val_l),
                          data_collator=DataCollatorWithPadding(tok))
        t0 = time.perf_counter()
        trainer.train()
        secs = time.perf_counter() - t0
        pred = trainer.predict(ds(te, tel))
    acc = float((pred.predictions.argmax(-1) == pred.label_ids).mean())
    return {"train_seconds": secs, "test_accuracy": acc, "train_tokens": sum(map(len, tr)), "peak_rss_mb": peak_rss_mb()}


def contender_book_loop(epochs: int) -> dict:
    """Raschka ch. 6 `train_classifier_simple`, on the same HF model and frozen parameters."""
    path, tok, ((tr, trl), (va, val_l), (te, tel)) = _data()
    longest = max(map(len, tr))
    pad = lambda ids: torch.tensor([i[:longest] + [tok.pad_token_id] * (longest - len(i[:longest])) for i in ids])  # noqa: E731
    X, Xv, Xt = pad(tr), pad(va), pad(te)
    Y, Yv, Yt = torch.tensor(trl), torch.tensor(val_l), torch.tensor(tel)
    model = _hf_model(path, tok)
    logits_of = lambda x: model.score(model.base_model(input_ids=x, use_cache=False).last_hidden_state[:, -1, :])  # noqa: E731
    g = torch.Generator().manual_seed(TRAIN_SEED)
    batches = lambda n, shuffle: (torch.randperm(n, generator=g) if shuffle else torch.arange(n)).split(BS)  # noqa: E731

    def calc(x, y, num_batches=None):
        model.eval()
        loss = correct = n = 0
        with torch.no_grad():
            for j, idx in enumerate(batches(len(x), False)):
                if num_batches is not None and j >= num_batches:
                    break
                lg = logits_of(x[idx])
                loss += float(torch.nn.functional.cross_entropy(lg, y[idx])) * len(idx)
                correct += int((lg.argmax(-1) == y[idx]).sum())
                n += len(idx)
        model.train()
        return loss / n, correct / n

    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    t0 = time.perf_counter()
    step = 0
    model.train()
    for _ in range(epochs):
        for idx in batches(len(X), True):
            if len(idx) < BS:  # drop_last=True
                continue
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(logits_of(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0:  # eval_freq=50, eval_iter=5
                calc(X, Y, 5), calc(Xv, Yv, 5)
        calc(X, Y, 5), calc(Xv, Yv, 5)  # per-epoch accuracy on eval_iter batches
    secs = time.perf_counter() - t0
    return {"train_seconds": secs, "test_accuracy": calc(Xt, Yt)[1], "train_tokens": sum(map(len, tr)),
            "padded_tokens_per_epoch": int(X.numel()), "peak_rss_mb": peak_rss_mb()}


def contender_scaling(sizes: str) -> dict:
    """Time of one epoch (feature cache included) on n SST-2 GLUE phrases."""
    from lmclassify import TextClassifier
    from lmclassify.data.readers import read_examples
    from lmclassify.paths import data_root

    ex = read_examples(data_root() / "sst2" / "glue_train.tsv", text_column="sentence")
    out = {}
    for n in map(int, sizes.split(",")):
        sub = ex.subset(range(n))
        clf = TextClassifier(MODEL, epochs=1, batch_size=BS, learning_rate=LR, weight_decay=WD, seed=TRAIN_SEED,
                             progress=False).fit(sub.texts, sub.labels)
        out[str(n)] = {"seconds": clf.train_seconds_, "tokens": clf._encoded["train"].n_tokens}
    return out


def matmul_gflops(seconds: float = 3.0) -> float:
    """fp32 matmul rate at the shapes this model runs (tokens x 576 x 1536), in this run."""
    a, b = torch.randn(2048, 576), torch.randn(576, 1536)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 2048 * 576 * 1536 * n / (time.perf_counter() - t0) / 1e9


def floor_seconds(res: dict, epochs: int, gflops: float) -> float:
    """FLOPs the job cannot avoid at the measured matmul rate: one forward of the frozen
    blocks over the real train+validation tokens, forward+backward (3x) of the trainable
    block per epoch over the train tokens, and its forward over validation each epoch."""
    from transformers import AutoConfig

    from lmclassify.models.resolve import resolve_model

    c = AutoConfig.from_pretrained(resolve_model(MODEL))
    h, i, L = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    kv = h * c.num_key_value_heads // c.num_attention_heads
    per_token_block = 2 * (2 * h * h + 2 * h * kv + 3 * h * i)  # matmul FLOPs of one block
    tr, va = res["train_tokens"], res["val_tokens"]
    flops = per_token_block * ((L - 1) * (tr + va) + epochs * (3 * tr + va))
    return flops / (gflops * 1e9)


CONTENDERS = ("lmclassify", "lmclassify_int8_cache", "lmclassify_bf16_cache", "lmclassify_defaults", "hf_trainer",
              "book_loop")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", default="1,5", help="comma list: each runs every contender (ratios side by side)")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--only", help=f"comma list of contenders ({','.join(CONTENDERS)},scaling)")
    ap.add_argument("--scaling-sizes", default="1000,4000,16000")
    ap.add_argument("--seed", type=int, default=SEED, help="training seed (initialisation, batch order); "
                                                          "the split stays the recipe's")
    ap.add_argument("--contender", help=argparse.SUPPRESS)
    a = ap.parse_args()
    global TRAIN_SEED
    TRAIN_SEED = a.seed
    torch.set_num_threads(torch.get_num_threads())
    if a.contender:  # child process
        import json

        fn = globals()[f"contender_{a.contender}"]
        print(json.dumps(fn(a.scaling_sizes) if a.contender == "scaling" else fn(int(a.epochs))))
        return
    names = (a.only or ",".join(CONTENDERS) + ",scaling").split(",")
    epochs = [int(e) for e in a.epochs.split(",")]
    res: dict = {"by_epochs": {}}
    gf = matmul_gflops()
    for e in epochs:
        for name in (n for n in names if n != "scaling"):
            print(f"running {name}, {e} epoch(s) ...", flush=True)
            res["by_epochs"].setdefault(str(e), {})[name] = run_child(
                Path(__file__), ["--contender", name, "--epochs", str(e), "--seed", str(a.seed)], timeout=4 * 3600)
            print(f"  {res['by_epochs'][str(e)][name]}", flush=True)
            summarise(res, gf, a.output)  # partial results survive an interrupted run
    if "scaling" in names:
        print("running scaling ...", flush=True)
        res["scaling"] = run_child(Path(__file__), ["--contender", "scaling", "--scaling-sizes", a.scaling_sizes],
                                   timeout=4 * 3600)
    summarise(res, gf, a.output)


def summarise(res: dict, gf: float, output: Path | None = None) -> None:
    out = {"model": MODEL, "batch_size": BS, "train_seed": TRAIN_SEED, "matmul_gflops": gf, **res}
    table = f"## Training speed, SMS spam recipe, {MODEL}, batch {BS}, training seed {TRAIN_SEED}\n\n"
    rows, ratio_rows = [], []
    for e, by in res["by_epochs"].items():
        for name in CONTENDERS:
            if name in by:
                r = by[name]
                r["tokens_per_second"] = r["train_tokens"] * int(e) / r["train_seconds"]
                shown = name if name != "lmclassify_defaults" else \
                    f"{name} (cache {r.get('feature_precision')})" + \
                    (f", steps {r['train_precision']}" if r.get("train_precision") else "")
                rows.append([e, shown, round(r["train_seconds"], 1), round(100 * r["test_accuracy"], 2),
                             round(r["peak_rss_mb"]), round(r["tokens_per_second"])])
        for ours in ("lmclassify", "lmclassify_int8_cache", "lmclassify_bf16_cache", "lmclassify_defaults"):
            if ours not in by:
                continue
            r = by[ours]
            r["floor_seconds"] = floor_seconds(r, int(e), gf)
            r["ratios"] = {f"{n}_over_{ours}": by[n]["train_seconds"] / r["train_seconds"]
                           for n in ("hf_trainer", "book_loop") if n in by}
            r["ratios"][f"{ours}_over_floor"] = r["train_seconds"] / r["floor_seconds"]
            ratio_rows += [[e, k, round(v, 2)] for k, v in r["ratios"].items()]
    table += md_table(["epochs", "contender", "train s", "test acc %", "peak RSS MB", "train tokens/s"], rows)
    if ratio_rows:
        table += "\n\n" + md_table(["epochs", "ratio (side by side, same run)", "value"], ratio_rows)
        table += (f"\n\nfloor: the matmul FLOPs the job cannot avoid at {gf:.0f} GFLOP/s fp32, measured in this "
                  "run.")
    last = [by["lmclassify"] for by in res["by_epochs"].values() if "lmclassify" in by]
    if last:
        ours = last[-1]
        table += (f"\n\nInference on the test split, batch {BS}: lmclassify {ours['predict_texts_per_second']:.1f} texts/s, "
                  f"pipeline {ours['pipeline_texts_per_second']:.1f} texts/s "
                  f"({ours['predict_texts_per_second'] / ours['pipeline_texts_per_second']:.2f}x); labels agree on "
                  f"{100 * ours['pipeline_label_agreement']:.1f} %. With --quantize int8: "
                  f"{ours['int8_texts_per_second']:.1f} texts/s "
                  f"({ours['int8_texts_per_second'] / ours['pipeline_texts_per_second']:.2f}x pipeline), test accuracy "
                  f"{100 * ours['int8_test_accuracy']:.2f} % (fp32 {100 * ours['fp32_test_accuracy']:.2f} %), labels "
                  f"agree with fp32 on {100 * ours.get('int8_fp32_label_agreement', float('nan')):.1f} %.")
    if "scaling" in res:
        sizes = {n: v for n, v in res["scaling"].items() if n.isdigit()}  # not the child's wall_seconds
        pts = [(int(n), v["seconds"]) for n, v in sizes.items()]
        if len(pts) >= 2:
            xs, ys = [math.log(n) for n, _ in pts], [math.log(s) for _, s in pts]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            out["scaling_exponent"] = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        table += "\n\n" + md_table(["train texts", "tokens", "seconds (1 epoch, cache included)"],
                                   [[n, v["tokens"], round(v["seconds"], 1)] for n, v in sizes.items()])
        if "scaling_exponent" in out:
            table += f"\n\ngrowth exponent: {out['scaling_exponent']:.2f}"
    path = write_results("speed", out, table, output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
