"""The CRF against brute force over every tag sequence of a tiny random example:
Viterbi finds the best path, log Z is the log-sum-exp of all path scores, the
log-likelihood matches, and the hand-written gradient equals the marginals."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from lmclassify.models.crf import CRF

C, W = 3, 4


@pytest.fixture
def example():
    torch.manual_seed(0)
    crf = CRF(C).double().requires_grad_(False)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    e = torch.randn(3, W, C, dtype=torch.float64)
    lengths = [4, 2, 1]
    mask = torch.tensor([[i < n for i in range(W)] for n in lengths])
    return crf, e, mask, lengths


def brute_score(crf, e_row, path) -> float:
    s = float(crf.start[path[0]] + crf.end[path[-1]])
    s += sum(float(e_row[t, y]) for t, y in enumerate(path))
    s += sum(float(crf.transitions[a, b]) for a, b in zip(path, path[1:]))
    return s


def all_paths(n):
    return list(itertools.product(range(C), repeat=n))


def test_viterbi_equals_brute_force(example):
    crf, e, mask, lengths = example
    decoded = crf.decode(e, mask)
    for b, n in enumerate(lengths):
        best = max(all_paths(n), key=lambda p: brute_score(crf, e[b], p))
        assert decoded[b] == list(best)


def test_log_partition_and_likelihood_equal_brute_force(example):
    crf, e, mask, lengths = example
    logz = crf.log_partition(e, mask)
    for b, n in enumerate(lengths):
        scores = [brute_score(crf, e[b], p) for p in all_paths(n)]
        ref = math.log(sum(math.exp(s) for s in scores))
        assert logz[b].item() == pytest.approx(ref, abs=1e-9)
        path = all_paths(n)[5 % len(scores)]
        tags = torch.tensor([list(path) + [-100] * (W - n)])
        nll = crf.nll(e[b:b + 1], tags, mask[b:b + 1])
        assert crf.score(e[b:b + 1], tags, mask[b:b + 1]).item() == pytest.approx(brute_score(crf, e[b], path))
        assert -nll.item() == pytest.approx(brute_score(crf, e[b], path) - ref, abs=1e-9)


def test_marginals_equal_brute_force(example):
    crf, e, mask, lengths = example
    marg = crf.marginals(e, mask)
    for b, n in enumerate(lengths):
        paths = all_paths(n)
        w = torch.tensor([math.exp(brute_score(crf, e[b], p)) for p in paths], dtype=torch.float64)
        w = w / w.sum()
        ref = torch.zeros(W, C, dtype=torch.float64)
        for p, pw in zip(paths, w):
            for t, y in enumerate(p):
                ref[t, y] += pw
        assert torch.allclose(marg[b].double(), ref, atol=1e-6)


def test_hand_written_gradient_matches_numerical(example):
    crf, e, mask, _ = example
    tags = torch.tensor([[0, 1, 2, 1], [2, 2, -100, -100], [1, -100, -100, -100]])

    inputs = (e.clone().requires_grad_(), crf.transitions.detach().clone().requires_grad_(),
              crf.start.detach().clone().requires_grad_(), crf.end.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(lambda *x: _nll(crf, tags, mask, *x), inputs)


def _nll(crf, tags, mask, e, trans, start, end):
    from lmclassify.models.crf import _LogPartition

    return _LogPartition.apply(e, trans, start, end, mask) - _path_score(e, tags, mask, trans, start, end)


def _path_score(e, tags, mask, trans, start, end):
    tags = tags.masked_fill(~mask, 0)
    n = mask.sum(1)
    s = (e.gather(-1, tags.unsqueeze(-1)).squeeze(-1) * mask).sum(1) + start[tags[:, 0]]
    s = s + (trans[tags[:, :-1], tags[:, 1:]] * mask[:, 1:]).sum(1)
    return s + end[tags.gather(1, (n - 1).unsqueeze(1)).squeeze(1)]


def test_empty_rows_and_counts_init():
    crf = CRF(3)
    e = torch.randn(2, 3, 3)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert crf.decode(e, mask)[1] == []
    assert crf.log_partition(e, mask)[1].item() == 0.0
    crf.init_from_counts([[0, 1, 2], [0, 0]], smoothing=1.0)
    # row 0 saw 0->1 once and 0->0 once, plus one smoothing count per tag: (2, 2, 1) / 5
    assert torch.allclose(crf.transitions[0].exp(), torch.tensor([0.4, 0.4, 0.2]))
    assert torch.allclose(crf.start.exp(), torch.tensor([3 / 5, 1 / 5, 1 / 5]))
