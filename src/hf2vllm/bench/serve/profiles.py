"""Load shapes, as pure schedules.

- Closed loop (``concurrency``): C requests in flight; a new one starts when one finishes.
- Open loop (``rate``): requests start at arrival times drawn from a gamma process with mean rate
  ``rate``/s. ``burstiness`` is the gamma shape: 1.0 is Poisson, < 1 burstier, > 1 more regular (the
  same parametrisation as ``vllm bench serve --burstiness``). ``rate=inf`` sends everything at once.
"""

from __future__ import annotations

import math
import random

from pydantic import BaseModel, Field


class LoadProfile(BaseModel):
    """One load level."""

    kind: str = Field(description='"concurrency" (closed loop) or "rate" (open loop)')
    value: float = Field(description="concurrency C, or mean requests/s (inf = all at once)")
    burstiness: float = 1.0

    @property
    def label(self) -> str:
        if self.kind == "concurrency":
            return f"concurrency {int(self.value)}"
        rate = "inf" if math.isinf(self.value) else f"{self.value:g}/s"
        return f"rate {rate}" + ("" if self.burstiness == 1.0 else f" (burstiness {self.burstiness:g})")


def arrival_offsets(count: int, rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    """Start times (seconds from the run start) of ``count`` open-loop requests; the first starts at 0."""
    if count <= 0:
        return []
    if rate <= 0:
        raise ValueError("rate must be > 0 (use inf for all at once)")
    if burstiness <= 0:
        raise ValueError("burstiness must be > 0")
    if math.isinf(rate):
        return [0.0] * count
    rng = random.Random(seed)
    theta = 1.0 / (rate * burstiness)
    offsets = [0.0]
    for _ in range(count - 1):
        offsets.append(offsets[-1] + rng.gammavariate(burstiness, theta))
    return offsets


def parse_number_list(text: str, *, name: str, allow_inf: bool = False) -> list[float]:
    """``"1,2,4"`` -> [1.0, 2.0, 4.0]; a bad item raises ValueError naming the option."""
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not a number") from None
        if math.isnan(value) or value <= 0 or (math.isinf(value) and not allow_inf):
            raise ValueError(f"{name}: {item!r} must be a positive number{' or inf' if allow_inf else ''}")
        values.append(value)
    if not values:
        raise ValueError(f"{name}: no values given")
    return values
