"""A linear-chain CRF over per-word emission scores: learned tag-to-tag transitions,
log-likelihood by the forward algorithm, its gradient (the tag marginals) by the
backward algorithm, and Viterbi decoding.

Sequences are left-aligned: ``mask`` (B, W) is true on the first ``len_b`` positions of
row b and false after. A row of length 0 scores 0 and decodes to ``[]``.

The recursions are W small steps on (B, C, C) tensors. Under autograd each step would be
several tiny kernels forward and back, and on a busy CPU every tiny kernel handed to the
intra-op thread pool can wait milliseconds for a thread; so the gradient is written out
(forward-backward) and both passes run on the calling thread: 100x faster there.

>>> crf = CRF(num_tags=3)
>>> e = torch.randn(2, 4, 3); mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
>>> [len(p) for p in crf.decode(e, mask)]
[4, 2]
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def _one_thread(x: torch.Tensor) -> Iterator[None]:
    if x.device.type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class _LogPartition(torch.autograd.Function):
    """log Z per row, (B,), with the exact gradient from forward-backward."""

    @staticmethod
    def forward(ctx, e, trans, start, end, mask):
        B, W, C = e.shape
        with _one_thread(e):
            alphas = e.new_empty(B, W, C)  # alphas[:, t, j]: log-sum of paths ending in tag j at t
            alpha = start + e[:, 0]
            alphas[:, 0] = alpha
            for t in range(1, W):
                # (B, C_prev, 1) + (C_prev, C) -> sum out the previous tag, then emit
                nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + e[:, t]
                alpha = torch.where(mask[:, t, None], nxt, alpha)
                alphas[:, t] = alpha
            z = torch.logsumexp(alpha + end, dim=1)
        ctx.save_for_backward(e, trans, end, mask, alphas, z)
        return torch.where(mask.any(1), z, torch.zeros_like(z))

    @staticmethod
    def backward(ctx, gz):
        e, trans, end, mask, alphas, z = ctx.saved_tensors
        B, W, C = e.shape
        lengths = mask.sum(1)
        g = gz * mask.any(1)  # (B,) zero-length rows have no gradient
        with _one_thread(e):
            ge, gtrans = torch.zeros_like(e), torch.zeros_like(trans)
            beta = end.expand(B, C)  # beta_t[j]: log-sum of continuations from tag j at t
            for t in range(W - 1, -1, -1):
                if t < W - 1:
                    nxt = torch.logsumexp(trans + (e[:, t + 1] + beta).unsqueeze(1), dim=2)
                    beta = torch.where((t < lengths - 1)[:, None], nxt, end.expand(B, C))
                live = (t < lengths).to(e.dtype) * g  # (B,)
                ge[:, t] = (alphas[:, t] + beta - z[:, None]).exp() * live[:, None]
                if t > 0:  # P(tag i at t-1, tag j at t)
                    pair = alphas[:, t - 1, :, None] + trans + (e[:, t] + beta)[:, None, :] - z[:, None, None]
                    gtrans += (pair.exp() * live[:, None, None]).sum(0)
            gstart = ge[:, 0].sum(0)
            last = alphas.gather(1, (lengths - 1).clamp(min=0)[:, None, None].expand(B, 1, C)).squeeze(1)
            gend = ((last + end - z[:, None]).exp() * g[:, None]).sum(0)
        return ge, gtrans, gstart, gend, None


class CRF(nn.Module):
    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        # transitions[i, j]: score of tag i followed by tag j; start/end: first and last tag.
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))

    @torch.no_grad()
    def init_from_counts(self, tag_ids: list[list[int]], smoothing: float = 1.0) -> None:
        """Start from the training data's log transition frequencies (an HMM's estimates):
        at fine-tuning learning rates (1e-5..1e-4) zeros would barely move, while counts give
        forbidden moves such as O -> I-x a large negative score from the first step."""
        C = self.num_tags
        trans = torch.full((C, C), smoothing)
        start, end = torch.full((C,), smoothing), torch.full((C,), smoothing)
        for seq in tag_ids:
            if not seq:
                continue
            start[seq[0]] += 1
            end[seq[-1]] += 1
            for a, b in zip(seq, seq[1:]):
                trans[a, b] += 1
        dev = self.transitions.device
        self.transitions.copy_((trans / trans.sum(1, keepdim=True)).log().to(dev))
        self.start.copy_((start / start.sum()).log().to(dev))
        self.end.copy_((end / end.sum()).log().to(dev))

    def _params(self, e: torch.Tensor):
        return self.transitions.to(e.dtype), self.start.to(e.dtype), self.end.to(e.dtype)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised score of the given tag paths: (B,)."""
        m = mask.bool()
        e = emissions if emissions.dtype == torch.float64 else emissions.float()
        trans, start, end = self._params(e)
        tags = tags.masked_fill(~m, 0)  # padding may hold -100
        lengths = m.sum(1)
        s = (e.gather(-1, tags.unsqueeze(-1)).squeeze(-1) * m).sum(1)  # emissions (B,)
        s = s + start[tags[:, 0]]
        s = s + (trans[tags[:, :-1], tags[:, 1:]] * m[:, 1:]).sum(1)
        last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        s = s + end[last]
        return torch.where(lengths > 0, s, torch.zeros_like(s))

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log of the sum over all tag paths of exp(score): (B,)."""
        e = emissions if emissions.dtype == torch.float64 else emissions.float()
        if e.shape[1] == 0:
            return e.new_zeros(e.shape[0])
        return _LogPartition.apply(e, *self._params(e), mask.bool())

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``tags`` per sequence: (B,)."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The highest-scoring tag path of each row (Viterbi), ``len_b`` tags each."""
        e, m = emissions.float(), mask.bool()
        B, W, _ = e.shape
        if W == 0:
            return [[] for _ in range(B)]
        trans, start, end = self._params(e)
        with _one_thread(e):
            score = start + e[:, 0]  # (B, C)
            back = []  # back[t-1][b, j]: best previous tag when position t has tag j
            for t in range(1, W):
                best, idx = (score.unsqueeze(2) + trans).max(1)  # (B, C)
                score = torch.where(m[:, t, None], best + e[:, t], score)
                back.append(idx)
            lengths = m.sum(1)
            last = (score + end).argmax(1)  # (B,) the best final tag of each row
            path = torch.zeros(B, W, dtype=torch.long, device=e.device)
            rows = torch.arange(B, device=e.device)
            for t in range(W - 1, -1, -1):
                # at a row's last position take its best final tag, before it follow the
                # back-pointer from t + 1, past it (padding) any value will do
                tag = last
                if t < W - 1:
                    tag = torch.where(t < lengths - 1, back[t][rows, path[:, t + 1]], last)
                path[:, t] = tag
            lengths = lengths.tolist()
            path = path.tolist()
        return [p[:n] for p, n in zip(path, lengths)]

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(tag at position t = j | sentence): (B, W, C), zero on padding. The gradient of
        log Z with respect to the emissions is exactly these marginals."""
        # clones: tensors made under inference_mode cannot take part in autograd
        with torch.inference_mode(False), torch.enable_grad():
            e = emissions.detach().float().clone().requires_grad_(True)
            m = mask.clone()
            (grad,) = torch.autograd.grad(self.log_partition(e, m).sum(), e)
        return grad.detach() * m.unsqueeze(-1)
