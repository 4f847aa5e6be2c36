"""Wall time and peak memory of one benchmark case, measured in a fresh subprocess.

A *case* is ``"module:function"`` plus JSON keyword arguments: ``function(**kwargs)``
does the set-up (imports, data, a warm-up call that triggers JIT compilation and
caches) and returns a zero-argument callable, the measured work. That callable must
return a small JSON-able summary (e.g. an edge count) and drop its large results, so
that nothing outlives a repetition.

Timing: best (and all) of ``repeats`` calls, wall time (``time.perf_counter``) and CPU
time of the process, all threads summed (``time.process_time``). On a machine shared
with other jobs the CPU time is the steadier measure of work: Linux's autogroup
scheduling gives a session a share of the cores however many threads it runs, so there
wall time is roughly CPU time over that share.
Peak memory: after the set-up, the kernel's peak resident-set counter (``VmHWM``) is
reset by writing ``5`` to ``/proc/self/clear_refs`` (Linux) and the resident size
(``VmRSS``) noted as baseline; peak = ``VmHWM`` after the timed calls minus that
baseline. It counts every allocation of the process (numpy, torch, C++ libraries,
threads), unlike ``tracemalloc``, which sees only Python-level allocations.

Run as ``python -m benchmarks._measure module:function '{"kw": 1}' repeats``; the last
line of its output is the JSON record.
"""
from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["run_case", "thread_env"]

_ROOT = Path(__file__).resolve().parents[1]


def thread_env(threads: int) -> dict[str, str]:
    """Environment limiting every threading runtime (OpenMP, MKL, BLAS, numba) to ``threads``.

    OpenMP threads also sleep rather than spin when idle (``OMP_WAIT_POLICY=PASSIVE``): on
    a machine shared with other jobs, spinning workers take the time slices the working
    ones need (measured here: a 10**4-point radius graph took 0.14 s spinning, 0.016 s
    passive, on two oversubscribed cores).
    """
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
    return {name: str(threads) for name in names} | {"OMP_WAIT_POLICY": "PASSIVE"}


def run_case(target: str, kwargs: dict, *, repeats: int, timeout: float, threads: int) -> dict:
    """Measure one case in a fresh Python process.

    Returns ``{"status": "ok", "seconds": best, "all_seconds": [...], "cpu_seconds": best,
    "all_cpu_seconds": [...], "peak_bytes": ..., "summary": ...}``, or ``{"status": "timeout"}`` / ``{"status": "error", "error": ...}``.
    """
    env = os.environ | thread_env(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "benchmarks._measure", target, json.dumps(kwargs), str(repeats)]
    try:
        done = subprocess.run(command, cwd=_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "timeout_seconds": timeout}
    if done.returncode != 0:
        return {"status": "error", "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measure(target: str, kwargs: dict, repeats: int) -> dict:
    module, name = target.split(":")
    work = getattr(importlib.import_module(module), name)(**kwargs)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    baseline = _status_bytes("VmRSS")
    seconds, cpu_seconds, summary = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        summary = work()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - start_cpu)
    return {
        "status": "ok",
        "seconds": min(seconds),
        "all_seconds": seconds,
        "cpu_seconds": min(cpu_seconds),
        "all_cpu_seconds": cpu_seconds,
        "peak_bytes": _status_bytes("VmHWM") - baseline,
        "summary": summary,
    }


if __name__ == "__main__":
    target, kwargs, repeats = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    print(json.dumps(_measure(target, kwargs, repeats)))
