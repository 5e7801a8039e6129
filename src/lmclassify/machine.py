"""What this machine's CPU can do: the facts that decide which int8 or bf16 kernel is
fastest (``models/kernel_choice.py``) and that every benchmark result records, so numbers from
different CPUs are never compared silently."""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

# The flags that change which matmul kernels are fast.
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "x86_64", "aarch64", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return model, tuple(f for f in VECTOR_FLAGS if f in flags)


def machine_info() -> dict:
    """CPU model, ATen's dispatch level, the vector extensions that matter, torch version
    and threads, plus a one-line summary for tables and messages."""
    import torch

    model, flags = _cpuinfo()
    cap = torch.backends.cpu.get_cpu_capability()
    threads = torch.get_num_threads()
    return {"cpu": model, "cpu_capability": cap, "flags": list(flags), "cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": threads,
            "summary": f"{model}, {cap} ({', '.join(flags) or 'no AVX2'}), {os.cpu_count()} cores, "
                       f"torch {torch.__version__} on {threads} threads"}
