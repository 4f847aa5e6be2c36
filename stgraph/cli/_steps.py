"""Timed steps and the printed summary of the console commands."""
from __future__ import annotations

import time
from contextlib import contextmanager

from tqdm.auto import tqdm


@contextmanager
def step(name: str, timings: dict[str, float]):
    """Time the block as ``timings[name]``, with a one-step progress bar on a terminal."""
    start = time.perf_counter()
    with tqdm(total=1, desc=name, leave=False, disable=None) as bar:
        yield
        bar.update()
    timings[name] = time.perf_counter() - start


def timing_rows(timings: dict[str, float]) -> dict[str, float]:
    """The summary rows of ``timings``."""
    return {f"time: {k} (s)": v for k, v in timings.items()}


def print_summary(summary: dict) -> None:
    """Print ``summary`` as aligned ``key  value`` lines (numbers with thousands separators)."""
    width = max(map(len, summary))
    for key, value in summary.items():
        if isinstance(value, str):
            shown = value
        else:
            shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        print(f"{key:<{width}}  {shown}")
