"""Progress bars for long steps: on stderr, and only on a terminal (logs stay clean)."""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(desc: str, total: int, *, enabled: bool = True, unit: str = "tok") -> tqdm:
    """A tqdm bar that shows only when ``enabled`` and stderr is a terminal; use as a context manager."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        leave=False,
        disable=None if enabled else True,  # None: tqdm disables itself off a terminal
    )
