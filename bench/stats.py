"""Summary figures the bench scripts share, so their percentiles are computed the same way."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    """The `q` quantile (0-1) of `values`: the nearest-rank element of the sorted list, no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
