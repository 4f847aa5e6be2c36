"""Timed steps, the output checks and the printed summary of the console commands."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm


def check_creatable(out: str, target: Path) -> None:
    """Refuse, before any work, an ``--out`` whose nearest existing folder is not a
    writable folder: the write would otherwise fail after all the work."""
    folder = next(p for p in target.resolve().parents if p.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot create it, {folder} is not a writable folder")


@contextmanager
def writing(out: str, timings: dict[str, float]):
    """The timed ``write`` step, with the folders ``out`` needs created and a failed
    write (a full disk, a folder writable in its mode bits only) said in one line."""
    with step("write", timings):
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            yield
        except OSError as err:
            raise ValueError(f"--out {out}: cannot write it ({err})") from None


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
