"""LoRA adapters (via ``peft``) on the top blocks of a frozen-prefix network.

``--train-layers lora`` freezes every weight of the transformer and learns a low-rank
update ``W + (alpha / r) B A`` beside chosen Linears of the top ``--lora-layers`` blocks
(default: every block). The head and the final norm are trained in full: they are new or
small, and a LoRA classifier whose head is frozen, or trained but then lost on save (peft
#577, #1070, transformers #26160: a head outside ``modules_to_save`` comes back random), is
the failure users report most. Here the head is never a peft module at all, so nothing can
drop it. Blocks below the adapted ones are untouched, so the feature cache still applies
below them exactly as with ``--train-layers K``.

The adapters are injected into the transformers model in place (``inject_adapter_in_model``):
the block list, the last-token path and the checkpoint names keep working. Saving writes the
merged weights (``merged_state_dict``: no adapters left, a plain transformers directory), and
``--save-adapter`` also writes a peft adapter directory (``save_adapter``) that
``PeftModel.from_pretrained(base classifier, DIR/adapter)`` loads, head included.

Default targets come from the blocks themselves, not a per-model table: every Linear (or
GPT-2 ``Conv1D``) inside a block - q/k/v/o + gate/up/down for Llama, c_attn/c_proj/c_fc for
GPT-2, query/key/value/dense for BERT.

>>> net = build_network("sequence", "smollm2-135m", {0: "ham", 1: "spam"}, train_layers="lora",
...                     lora=LoraSettings(r=8, layers=4)).network                # doctest: +SKIP
>>> net.parameter_counts()        # adapters on the top 4 blocks, head, final norm  # doctest: +SKIP
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..errors import LmClassifyError

ADAPTER_DIR = "adapter"
_NAME = "default"  # peft's adapter name
_PREFIX = "base_model.model."  # what PeftModel puts before every saved key


@dataclass(frozen=True)
class LoraSettings:
    """What ``--lora-*`` asked for; ``layers`` None: every block."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: Optional[tuple[str, ...]] = None
    layers: Optional[int] = None


def lora_settings(mc) -> Optional[LoraSettings]:
    """The LoRA settings of a model config, or None when it does not train LoRA."""
    if mc.train_layers != "lora":
        return None
    targets = tuple(t.strip() for t in mc.lora_targets.split(",") if t.strip()) if mc.lora_targets else None
    return LoraSettings(r=mc.lora_r, alpha=float(mc.lora_alpha), dropout=float(mc.lora_dropout), targets=targets,
                        layers=mc.lora_layers)


def lora_train_layers(settings: LoraSettings, n_layers: int) -> int:
    """The blocks the network treats as trainable (its split point): the adapted ones."""
    if settings.layers is not None and settings.layers > n_layers:
        raise LmClassifyError(f"--lora-layers {settings.layers} is more than the model's {n_layers} blocks")
    return settings.layers or n_layers


def block_linear_names(blocks: list[nn.Module]) -> list[str]:
    """Last name component of every Linear/Conv1D inside the blocks, in module order."""
    names: dict[str, None] = {}
    for block in blocks:
        for name, m in block.named_modules():
            if isinstance(m, (nn.Linear, Conv1D)):
                names[name.rpartition(".")[2]] = None
    return list(names)


def add_lora(net, settings: LoraSettings) -> None:
    """Inject LoRA into ``net`` (a ``FrozenPrefixModel`` built with the adapted blocks as its
    trainable top) in place, and leave trainable only the adapters and what was trainable
    outside the blocks (head, pooler, final norm, CRF)."""
    from peft import LoraConfig, inject_adapter_in_model

    bb = net.backbone
    top = list(bb.layers)[net.split:]
    available = block_linear_names(top)
    targets = list(settings.targets) if settings.targets else available
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise LmClassifyError(f"--lora-targets {','.join(unknown)}: no such Linear in {bb.config.model_type}'s "
                              f"blocks; choose among {','.join(available)}")
    block_params = {id(p) for b in bb.layers for p in b.parameters()}
    keep = [p for p in net.parameters() if p.requires_grad and id(p) not in block_params]
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, layers_to_transform=list(range(net.split, bb.n_layers)),
                        layers_pattern=bb.attr, bias="none",
                        fan_in_fan_out=any(isinstance(m, Conv1D) for b in top for m in b.modules()))
    inject_adapter_in_model(config, net.hf, adapter_name=_NAME)
    for name, p in net.named_parameters():
        p.requires_grad_(".lora_" in name)
    for p in keep:
        p.requires_grad_(True)
    net.lora_config = config
    net.train_layers = "lora"


def lora_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, peft LoRA layer) for every adapted Linear under ``module``."""
    from peft.tuners.lora import LoraLayer

    return [(n, m) for n, m in module.named_modules() if isinstance(m, LoraLayer)]


def has_adapters(net) -> bool:
    return bool(lora_layers(net.hf))


def merged_state_dict(hf: nn.Module) -> dict[str, torch.Tensor]:
    """``hf``'s state dict with every adapter folded into its base weight, under the plain
    layer names: what ``save_pretrained`` writes, without changing the live model (which
    keeps its adapters, so saving twice or training on works)."""
    sd = hf.state_dict()
    for name, layer in lora_layers(hf):
        base = layer.get_base_layer()
        for key in [k for k in sd if k.startswith(name + ".")]:
            del sd[key]
        with torch.no_grad():
            delta = layer.get_delta_weight(_NAME) if not layer.merged else 0
            sd[f"{name}.weight"] = (base.weight + delta).detach().contiguous()
        if getattr(base, "bias", None) is not None:
            sd[f"{name}.bias"] = base.bias.detach()
    return sd


def merge_adapters(net) -> int:
    """Fold the adapters into the base weights for good and drop them (peft's
    ``merge_and_unload``, one layer at a time): the network becomes a plain one, e.g.
    before int8 quantisation. Returns how many layers were merged."""
    found = lora_layers(net.hf)
    for name, layer in found:
        layer.merge(safe_merge=True)
        parent_name, _, attr = name.rpartition(".")
        parent = net.hf.get_submodule(parent_name) if parent_name else net.hf
        setattr(parent, attr, layer.get_base_layer())
    if found:
        for p in net.hf.parameters():
            p.requires_grad_(False)
    return len(found)


def save_adapter(net, directory: Path, extra_modules: tuple[nn.Module, ...] = ()) -> Path:
    """Write ``directory`` as peft's ``save_pretrained`` would: ``adapter_config.json`` and
    ``adapter_model.safetensors`` with the LoRA weights and, in full, every module trained
    outside the adapters (head, final norm) and ``extra_modules`` (a folded pooler) listed in
    ``modules_to_save``, so ``PeftModel.from_pretrained`` on the untouched base classifier
    reproduces the predictions, head included."""
    from peft import get_peft_model_state_dict

    hf = net.hf
    adapter = {id(p) for _, layer in lora_layers(hf) for p in layer.parameters()}
    wanted = {id(m) for m in extra_modules}
    names = [n for n, m in hf.named_modules() if n and (id(m) in wanted or any(
        p.requires_grad and id(p) not in adapter for p in m.parameters(recurse=False)))]
    names = [n for n in names if not any(n.startswith(o + ".") for o in names)]  # a saved parent holds them
    tensors = {_PREFIX + k: v for k, v in get_peft_model_state_dict(hf, adapter_name=_NAME).items()}
    for name in names:
        tensors.update({f"{_PREFIX}{name}.{k}": v for k, v in hf.get_submodule(name).state_dict().items()})
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
              str(directory / "adapter_model.safetensors"))
    config = copy.deepcopy(net.lora_config)
    config.modules_to_save, config.inference_mode = names, True
    config.task_type = "TOKEN_CLS" if _is_token_model(hf) else "SEQ_CLS"
    config.save_pretrained(str(directory))
    return directory


def _is_token_model(hf: nn.Module) -> bool:
    return type(hf).__name__.endswith("ForTokenClassification")
