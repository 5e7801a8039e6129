"""The scikit-learn contract of TextClassifier and TokenClassifier, for real: parameters
derived from the config fields and nothing else, clone/get_params/set_params, fit
returning self, probabilities in classes_ order, score = the task's main metric,
cross_val_score and GridSearchCV on tiny models; and what fit resolves (family
defaults, the position limit) lands in model_config_/train_config_, never in the params."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from helpers import sms_rows as _sms_rows
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils.validation import check_is_fitted

import lmclassify
from lmclassify import LmClassifyError, TextClassifier, TokenClassifier
from lmclassify.config import FAMILY_DEFAULTS, ModelConfig, TrainConfig

FITTED = ("module_", "tokenizer_", "task_", "classes_", "model_config_", "train_config_", "device_")


pytestmark = pytest.mark.one_thread  # tiny models: a 2-thread pool only adds waiting (conftest.py)




@pytest.fixture(scope="module")
def sms(sms_file) -> tuple[list[str], list[str]]:
    """80 real SMS texts, spam and ham alternating (so any unshuffled fold has both)."""
    rows = _sms_rows(sms_file)
    spam = [t for y, t in rows if y == "spam"][:40]
    ham = [t for y, t in rows if y == "ham"][:40]
    texts = [t for pair in zip(spam, ham) for t in pair]
    return texts, ["spam", "ham"] * 40


TOKEN_X = [["Paris", "is", "in", "France"], ["I", "met", "John", "Smith"], ["Berlin", "and", "Rome"],
           ["she", "lives", "in", "London"], ["Mary", "went", "home"], ["nothing", "here"]] * 3
TOKEN_Y = [["B-loc", "O", "O", "B-loc"], ["O", "O", "B-per", "I-per"], ["B-loc", "O", "B-loc"],
           ["O", "O", "O", "B-loc"], ["B-per", "O", "O"], ["O", "O"]] * 3


def _expected_params(network: str) -> dict:
    """Every model/train field that applies to ``network``, under its flag's name, with its default."""
    out = {}
    for cls in (ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            if network in f.metadata.get("applies", (network,)):
                flag = f.metadata.get("flag")
                out[flag[2:].replace("-", "_") if flag else f.name] = f.default
    return out


def _tiny(model_dir, **kw) -> TextClassifier:
    return TextClassifier(str(model_dir), **{"epochs": 1, "batch_size": 8, "learning_rate": 1e-3,
                                             "progress": False, "device": "cpu", **kw})


# ---- parameters ---------------------------------------------------------------------------

def test_text_params_are_exactly_the_config_fields():
    expected = _expected_params("sequence")
    assert "model" in expected and "name" not in expected and "crf" not in expected
    expected.update(positive_label=None, label_separator=",", progress=True)
    assert TextClassifier().get_params() == expected


def test_token_params_are_exactly_the_config_fields():
    expected = _expected_params("token")
    assert "crf" in expected and not {"pooling", "pair_mode", "task", "input_template", "head_bias"} & set(expected)
    expected.update(progress=True)
    assert TokenClassifier().get_params() == expected


@pytest.mark.parametrize("cls", [TextClassifier, TokenClassifier])
def test_every_param_is_a_config_option_and_back(cls):
    """configs() builds the sections from the params and set_config() is its inverse: one
    source of truth (no parameter the config does not hold, no option the params miss)."""
    est = cls("some-model", epochs=4, learning_rate=3e-4, train_layers=2, seed=9)
    mc, tc = est.configs()
    assert (mc.name, tc.epochs, tc.learning_rate, mc.train_layers, tc.seed) == ("some-model", 4, 3e-4, 2, 9)
    again = cls.from_config(mc, tc, progress=True)
    assert again.get_params() == est.get_params()
    assert again.configs() == (mc, tc)


def test_model_param_is_the_model_name():
    est = TextClassifier(model="minilm-l6")
    assert est.model == "minilm-l6" and est.get_params()["model"] == "minilm-l6"
    assert est.configs()[0].name == "minilm-l6"
    assert not hasattr(est, "name")
    assert TextClassifier("smollm2-135m").model == "smollm2-135m"  # the one positional parameter
    with pytest.raises(TypeError):
        TextClassifier("m", 3)  # everything else is keyword-only


@pytest.mark.parametrize("cls", [TextClassifier, TokenClassifier])
def test_set_params_changes_what_configs_returns(cls):
    est = cls()
    assert est.set_params(model="x-model", learning_rate=2e-3, epochs=7, head="mlp", keep_best=False) is est
    mc, tc = est.configs()
    assert (mc.name, mc.head, tc.learning_rate, tc.epochs, tc.keep_best) == ("x-model", "mlp", 2e-3, 7, False)
    with pytest.raises(ValueError, match="name"):
        est.set_params(name="x")  # the config field's name is not a second parameter


def test_init_only_stores_bad_values_fail_at_fit(sms):
    """scikit-learn: __init__ validates nothing (clone must reproduce any params); fit does."""
    texts, labels = sms
    est = TextClassifier("no-such-model", epochs=0, pooling="nonsense")
    assert est.get_params()["epochs"] == 0
    with pytest.raises(LmClassifyError, match="--epochs must be a whole number >= 1"):
        est.fit(texts, labels)


@pytest.mark.parametrize("cls", [TextClassifier, TokenClassifier])
def test_clone_of_an_unfitted_estimator(cls):
    est = cls("m", epochs=2, seed=5, progress=False)
    c = clone(est)
    assert c is not est and type(c) is cls and c.get_params() == est.get_params()


# ---- fitting and using ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_gpt2(tiny_gpt2_dir, sms):
    texts, labels = sms
    est = _tiny(tiny_gpt2_dir)
    assert est.fit(texts, labels) is est  # fit returns self
    return est


def test_clone_of_a_fitted_estimator_is_unfitted_with_equal_params(fitted_gpt2):
    c = clone(fitted_gpt2)
    assert c.get_params() == fitted_gpt2.get_params()
    assert not [a for a in FITTED if hasattr(c, a)]
    check_is_fitted(fitted_gpt2)
    with pytest.raises(NotFittedError):
        check_is_fitted(c)


METHODS = ["predict", "decision_function", "predict_records", "evaluate", "score", "save", "quantize"]


@pytest.mark.parametrize("cls,method", [(TextClassifier, m) for m in METHODS + ["predict_proba"]] +
                         [(TokenClassifier, m) for m in METHODS + ["predict_entities"]])
def test_unfitted_estimator_says_so(cls, method, tmp_path):
    """Every use of an unfitted estimator is the one clean error, not an AttributeError."""
    est = cls("m")
    args = {"evaluate": (["a b"], [["O", "O"]]), "score": (["a b"], [["O", "O"]]), "save": (tmp_path / "x",),
            "quantize": ()}.get(method, (["a b"],))
    with pytest.raises(LmClassifyError, match="not fitted"):
        getattr(est, method)(*args)


def test_fit_leaves_the_params_as_given(tiny_gpt2_dir, fitted_gpt2):
    """What fit resolves lives in model_config_/train_config_; the params stay as given."""
    assert fitted_gpt2.get_params() == _tiny(tiny_gpt2_dir).get_params()
    assert fitted_gpt2.batch_size == 8 and fitted_gpt2.max_length is None and fitted_gpt2.pooling == "auto"
    assert fitted_gpt2.model_config_.max_length == 256 and fitted_gpt2.model_config_.pooling == "last"


def test_predict_proba_columns_follow_classes(fitted_gpt2, sms):
    texts, _ = sms
    p = fitted_gpt2.predict_proba(texts)
    classes = list(fitted_gpt2.classes_)
    assert sorted(classes) == ["ham", "spam"] and p.shape == (len(texts), 2)
    assert np.allclose(p.sum(1), 1, atol=1e-5)
    assert [classes[i] for i in p.argmax(1)] == fitted_gpt2.predict(texts)
    logits = np.asarray(fitted_gpt2.decision_function(texts))
    assert (logits.argmax(1) == p.argmax(1)).all()
    records = fitted_gpt2.predict_records(texts[:4])
    for r, row in zip(records, p[:4]):
        assert [r["probabilities"][c] for c in classes] == pytest.approx(row.tolist(), abs=1e-6)


def test_score_is_the_evaluate_accuracy(fitted_gpt2, sms):
    texts, labels = sms
    m = fitted_gpt2.evaluate(texts[:40], labels[:40])
    acc = np.mean([a == b for a, b in zip(fitted_gpt2.predict(texts[:40]), labels[:40])])
    assert fitted_gpt2.score(texts[:40], labels[:40]) == m["accuracy"] == pytest.approx(acc)


def test_loaded_estimator_has_the_resolved_params_and_clones(fitted_gpt2, tmp_path, sms):
    texts, _ = sms
    fitted_gpt2.save(tmp_path / "m")
    back = lmclassify.load(tmp_path / "m", device="cpu")
    assert type(back) is TextClassifier
    assert back.predict(texts[:10]) == fitted_gpt2.predict(texts[:10])
    p = back.get_params()
    assert p["model"] == fitted_gpt2.model and p["batch_size"] == 8 and p["max_length"] == 256
    c = clone(back)
    assert c.get_params() == p and not hasattr(c, "module_")


def test_cross_val_score(tiny_gpt2_dir, sms):
    texts, labels = sms
    scores = cross_val_score(TextClassifier(str(tiny_gpt2_dir), epochs=1, batch_size=8, learning_rate=1e-3,
                                            progress=False), texts, labels, cv=2)
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)


def test_cross_val_score_stratifies_class_sorted_labels(tiny_gpt2_dir, sms):
    """Data as people keep it, one class after the other: a classifier gets stratified folds
    from cross_val_score(cv=int); plain KFold would train each fold on one class."""
    texts, labels = sms
    order = sorted(range(len(texts)), key=lambda i: labels[i])
    scores = cross_val_score(_tiny(tiny_gpt2_dir), [texts[i] for i in order], [labels[i] for i in order], cv=2,
                             error_score="raise")
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)


def test_grid_search_over_learning_rate(tiny_gpt2_dir, sms):
    texts, labels = sms
    gs = GridSearchCV(_tiny(tiny_gpt2_dir), {"learning_rate": [1e-3, 3e-3]}, cv=2)
    gs.fit(texts, labels)
    assert gs.best_params_["learning_rate"] in (1e-3, 3e-3)
    best = gs.best_estimator_
    assert best.learning_rate == gs.best_params_["learning_rate"] == best.train_config_.learning_rate
    assert set(best.predict(texts[:8])) <= {"ham", "spam"}
    assert len(gs.cv_results_["mean_test_score"]) == 2


# ---- defaults from the model family --------------------------------------------------------

@pytest.mark.parametrize("fixture,family", [("tiny_gpt2_dir", "decoder"), ("tiny_llama_dir", "decoder"),
                                            ("tiny_bert_dir", "encoder")])
def test_family_defaults_fill_what_was_not_given(request, fixture, family, sms):
    texts, labels = sms
    est = TextClassifier(str(request.getfixturevalue(fixture)), progress=False, device="cpu")
    est.fit(texts[:16], labels[:16])
    d = FAMILY_DEFAULTS[("sequence", family)]
    mc, tc = est.model_config_, est.train_config_
    assert est.family_ == family
    assert (tc.epochs, tc.batch_size, tc.learning_rate, tc.schedule, tc.weight_decay, tc.warmup_ratio) == \
        (d["epochs"], d["batch_size"], d["learning_rate"], d["schedule"], d["weight_decay"], d["warmup_ratio"])
    expected = {"decoder": (8, 5e-5, "constant", 5), "encoder": (32, 1e-4, "linear", 3)}[family]
    assert (tc.batch_size, tc.learning_rate, tc.schedule, tc.epochs) == expected
    assert mc.max_length == min(d["max_length"], 128 if family == "encoder" else 256)
    assert mc.pooling == ("cls" if family == "encoder" else "last")
    assert tc.monitor == "val_loss"
    assert est.fit_result_.steps == expected[3] * -(-16 // expected[0])  # every default epoch ran
    assert set(est.defaulted_) >= {"epochs", "batch_size", "learning_rate", "schedule"}
    assert est.get_params()["epochs"] is None and est.get_params()["batch_size"] is None


def test_given_options_beat_family_defaults(tiny_bert_dir, sms):
    texts, labels = sms
    est = TextClassifier(str(tiny_bert_dir), epochs=1, schedule="constant", progress=False, device="cpu")
    est.fit(texts[:16], labels[:16])
    tc = est.train_config_
    assert (tc.epochs, tc.schedule, tc.batch_size, tc.learning_rate) == (1, "constant", 32, 1e-4)
    assert "epochs" not in est.defaulted_ and "schedule" not in est.defaulted_


def test_max_length_past_the_position_limit_is_clamped_with_a_warning(tiny_bert_dir, sms):
    texts, labels = sms
    est = _tiny(tiny_bert_dir, max_length=1000)
    with pytest.warns(UserWarning, match=r"--max-length 1000 is past .*limit of 128 tokens; using 128"):
        est.fit(texts[:16], labels[:16])
    assert est.model_config_.max_length == 128 and est.max_length == 1000
    long = [" ".join(["word"] * 400)]
    assert len(est.predict(long)) == 1  # no position-table overflow at prediction
    assert est.evaluate(long, ["ham"])["truncated"] == 1


def test_default_max_length_is_fitted_to_the_model_silently(tiny_bert_dir, sms):
    """The family default (256) past a 128-position model: nobody asked for 256, so no
    warning naming a --max-length the user never gave; the limit is used."""
    texts, labels = sms
    est = _tiny(tiny_bert_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.fit(texts[:16], labels[:16])
    assert est.model_config_.max_length == 128


def test_max_length_within_the_limit_is_kept_silently(tiny_bert_dir, sms):
    texts, labels = sms
    est = _tiny(tiny_bert_dir, max_length=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.fit(texts[:16], labels[:16])
    assert est.model_config_.max_length == 64


# ---- TokenClassifier -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_tagger(tiny_bert_dir):
    est = TokenClassifier(str(tiny_bert_dir), epochs=2, batch_size=4, learning_rate=3e-3, progress=False,
                          device="cpu")
    assert est.fit(TOKEN_X, TOKEN_Y) is est
    return est


def test_tagger_clone_and_params(fitted_tagger):
    c = clone(fitted_tagger)
    assert c.get_params() == fitted_tagger.get_params() and not [a for a in FITTED if hasattr(c, a)]
    assert fitted_tagger.get_params()["learning_rate"] == 3e-3 == fitted_tagger.train_config_.learning_rate


def test_tagger_predicts_a_tag_per_word_and_scores_entity_f1(fitted_tagger):
    tags = fitted_tagger.predict(TOKEN_X[:6])
    assert [len(t) for t in tags] == [len(x) for x in TOKEN_X[:6]]
    assert set(fitted_tagger.classes_) >= {"O", "B-loc", "B-per", "I-per"}
    assert {t for row in tags for t in row} <= set(fitted_tagger.classes_)
    m = fitted_tagger.evaluate(TOKEN_X, TOKEN_Y)
    assert fitted_tagger.score(TOKEN_X, TOKEN_Y) == m["entity_f1"]


def test_tagger_family_defaults(fitted_tagger, tiny_bert_dir):
    d = FAMILY_DEFAULTS[("token", "encoder")]
    mc, tc = fitted_tagger.model_config_, fitted_tagger.train_config_
    assert (mc.train_layers, mc.max_length, tc.schedule, tc.weight_decay, tc.warmup_ratio) == \
        (d["train_layers"], min(d["max_length"], 128), d["schedule"], d["weight_decay"], d["warmup_ratio"])
    assert (tc.epochs, tc.batch_size) == (2, 4)  # given
    assert fitted_tagger.get_params()["train_layers"] is None


def test_text_classifier_refuses_the_token_task(tiny_bert_dir):
    with pytest.raises(LmClassifyError, match="TokenClassifier"):
        _tiny(tiny_bert_dir, task="token").fit(["a b"] * 4, ["x", "y"] * 2)
