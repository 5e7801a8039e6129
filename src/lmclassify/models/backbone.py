"""Facts about a transformers model that the rest of lmclassify needs, found by probing
the model rather than by per-family code: where the block list lives, the final norm,
whether it reads left-to-right (decoder) or both ways (encoder).

Running "blocks i..j" is done by temporarily swapping the block list for a slice and
letting the model's own forward do embeddings, masks and positions (rotary, absolute,
token types), so no family's model code is copied here.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator, Optional

import torch
from torch import nn

# Families whose attention sees the whole text; everything else is treated as causal.
ENCODER_TYPES = {
    "bert", "roberta", "xlm-roberta", "mpnet", "deberta", "deberta-v2", "distilbert",
    "electra", "albert", "camembert", "modernbert", "xlm", "ernie", "nomic_bert",
}
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f")


class _Stop(Exception):
    """Raised from a hook to end a forward pass once the wanted layer has run."""


def is_encoder(config) -> bool:
    return getattr(config, "model_type", "") in ENCODER_TYPES


def find_layers(base: nn.Module, n_layers: int) -> tuple[nn.Module, str, nn.ModuleList]:
    """The (parent, attribute, ModuleList) holding the transformer blocks: the shallowest
    ModuleList whose length is the config's layer count (``h``, ``layers``, ``encoder.layer``)."""
    best = None
    for name, mod in base.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n_layers:
            if best is None or name.count(".") < best[0].count("."):
                best = (name, mod)
    if best is None:
        raise RuntimeError(f"cannot find the {n_layers} transformer blocks in {type(base).__name__}")
    name, mod = best
    parent_name, _, attr = name.rpartition(".")
    parent = base.get_submodule(parent_name) if parent_name else base
    return parent, attr, mod


def find_final_norm(base: nn.Module) -> Optional[nn.Module]:
    for n in _FINAL_NORM_NAMES:
        m = getattr(base, n, None)
        if isinstance(m, nn.Module):
            return m
    return None


def num_layers(config) -> int:
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(cfg, key, None):
            return int(getattr(cfg, key))
    raise RuntimeError(f"config {type(config).__name__} does not say how many layers it has")


class Backbone:
    """The base transformer of a HF model, with 'run to block k' and 'run from block k'."""

    def __init__(self, base: nn.Module):
        self.base = base
        self.config = base.config
        self.n_layers = num_layers(base.config)
        self.parent, self.attr, self.layers = find_layers(base, self.n_layers)
        self.final_norm = find_final_norm(base)
        self.encoder = is_encoder(base.config)

    def _kwargs(self, attention_mask: torch.Tensor) -> dict:
        kw = {"attention_mask": attention_mask}
        if not self.encoder:
            # Positions from the mask make left- and right-padded batches give the
            # same result as unpadded text. (Encoders keep their own, e.g. RoBERTa's offset.)
            kw["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            kw["use_cache"] = False
        return kw

    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """All blocks: (B, T) ids -> (B, T, H) final hidden states."""
        return self.base(input_ids=input_ids, **self._kwargs(attention_mask)).last_hidden_state

    def run_to(self, k: int, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               prefix: Optional[object] = None) -> torch.Tensor:
        """Hidden states entering block k (after blocks 0..k-1): (B, T, H). ``prefix``: keys
        and values of tokens every row starts with (``prefix_cache``), left out of
        ``input_ids``; a decoder then computes only the rest."""
        if k == 0:
            raise ValueError("run_to(0) is the embedding output; use a split point >= 1")
        kw = self._kwargs(attention_mask)
        if prefix is not None:
            n, cache = prefix.get_seq_length(), copy.deepcopy(prefix)  # the cache grows: a copy per batch
            cache.batch_repeat_interleave(input_ids.shape[0])
            kw.update(attention_mask=torch.cat([attention_mask.new_ones(len(attention_mask), n), attention_mask], 1),
                      position_ids=kw["position_ids"] + n, use_cache=True, **self._cache_kwarg(cache))
        return self._captured(k, dict(input_ids=input_ids, **kw))

    def prefix_cache(self, k: int, prefix_ids: torch.Tensor) -> tuple[torch.Tensor, object]:
        """A decoder's states entering block k for a token prefix (P,) that many texts share,
        (P, H), and the keys/values blocks 0..k-1 hold for it. Causal attention makes both
        the same in every text that starts with it, so they are computed once."""
        from transformers import DynamicCache

        if self.encoder:
            raise ValueError("an encoder's states depend on the whole text: no prefix is shared")
        ids = prefix_ids.reshape(1, -1)
        cache = DynamicCache(config=self.config)
        h = self._captured(k, dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                                   position_ids=torch.arange(ids.shape[1], device=ids.device)[None],
                                   use_cache=True, **self._cache_kwarg(cache)))
        return h[0], cache

    def _cache_kwarg(self, cache) -> dict:
        """transformers 5.x renames ``past_key_values`` to ``cache`` (the old name warns)."""
        import inspect

        return {"cache" if "cache" in inspect.signature(self.base.forward).parameters else "past_key_values": cache}

    def _captured(self, k: int, inputs: dict) -> torch.Tensor:
        """Run the model on ``inputs`` and return what block k-1 outputs, stopping there."""
        captured = {}

        def grab(_mod, _args, out):
            captured["h"] = out[0] if isinstance(out, tuple) else out
            raise _Stop

        handle = self.layers[k - 1].register_forward_hook(grab)
        try:
            self.base(**inputs)
        except _Stop:
            pass
        finally:
            handle.remove()
        return captured["h"]

    def run_between(self, k: int, j: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Blocks k..j-1 on hidden states entering block k: the states entering block j."""
        if j <= k:
            return hidden
        with self._only_blocks_from(k, hidden):
            return self._captured(j, dict(inputs_embeds=hidden, **self._kwargs(attention_mask)))

    def run_from(self, k: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Blocks k..end and the final norm on hidden states entering block k: (B, T, H)."""
        if k >= self.n_layers:
            return self.final_norm(hidden) if self.final_norm is not None else hidden
        with self._only_blocks_from(k, hidden):
            # inputs_embeds only sets shapes and dtype; the pre-hook hands block k the real input.
            out = self.base(inputs_embeds=hidden, **self._kwargs(attention_mask))
        return out.last_hidden_state

    @contextlib.contextmanager
    def _only_blocks_from(self, k: int, hidden: torch.Tensor) -> Iterator[None]:
        def inject(_mod, args, kwargs):
            if args:
                return (hidden,) + tuple(args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        handle = self.layers[k].register_forward_pre_hook(inject, with_kwargs=True)
        setattr(self.parent, self.attr, nn.ModuleList(list(self.layers)[k:]))
        try:
            yield
        finally:
            setattr(self.parent, self.attr, self.layers)
            handle.remove()
