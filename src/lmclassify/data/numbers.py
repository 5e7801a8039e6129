"""Reading label values as numbers: what makes a column regression targets."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np


def number(v: Any) -> Optional[float]:
    """A finite float from a number or numeric string; None otherwise (also for "nan", "inf")."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        x = float(v)
    except ValueError:
        return None
    return x if np.isfinite(x) else None


def float_written(y: Any) -> bool:
    """A float value, or a number written as one ("3.8", "5.000", "1e-3"), not an integer."""
    if isinstance(y, float):
        return True
    if isinstance(y, str):
        try:
            int(y)
        except ValueError:
            return number(y) is not None
    return False
