"""Data-parallel training over :mod:`torch.distributed`.

When a default process group is initialised (for instance by ``torchrun``, then
``torch.distributed.init_process_group``), :class:`~stgraph.models.MaskedGeneTrainer`
trains one model on all processes: every process holds the same units, takes its
share of each step's mini-batch and the gradients are summed across processes
before the update. These are the few collectives it needs; without a process group
each is the identity, so single-process training runs the same code.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def process_device(device: torch.device) -> torch.device:
    """``device`` with its CUDA index made explicit: under ``torchrun`` each process on a
    machine takes the GPU of its ``LOCAL_RANK``, otherwise the current CUDA device.

    With a process group of several processes, a CUDA device also becomes the
    process's current one (:func:`torch.cuda.set_device`): the object collectives of
    :func:`check_identical` and :func:`raise_any_error` put their tensors on the
    current device, which is ``cuda:0`` in every process unless set, and NCCL refuses
    two processes on one GPU.
    """
    if device.type != "cuda":
        return device
    several = world()[1] > 1
    if device.index is None:
        index = int(os.environ["LOCAL_RANK"]) if several and "LOCAL_RANK" in os.environ else torch.cuda.current_device()
        device = torch.device("cuda", index)
    if several:
        torch.cuda.set_device(device)
    return device


def check_identical(name: str, value: Any) -> None:
    """Raise a ValueError on every process unless all processes pass an equal ``value``.

    The message gives the value of process 0 and of the first process that differs;
    for dicts (configurations, metadata), of each entry in which they differ.
    """
    rank, size = world()
    if size == 1:
        return
    values: list[Any] = [None] * size
    dist.all_gather_object(values, value)
    differ = [r for r, v in enumerate(values) if v != values[0]]
    if differ:
        raise ValueError(
            f"data-parallel training needs the same {name} on every process; "
            f"processes {differ} differ from process 0 (this is process {rank})"
            + _entries_that_differ(values[0], values[differ[0]], differ[0])
        )


def _entries_that_differ(first: Any, other: Any, other_rank: int) -> str:
    """``': key is a on process 0, b on process k; ...'`` for the (nested) entries of two
    dicts that differ, at most five; ``': a on process 0, b on process k'`` for other values."""
    if not (isinstance(first, dict) and isinstance(other, dict)):
        return f": {_short(first)} on process 0, {_short(other)} on process {other_rank}"
    first, other = _flatten(first), _flatten(other)
    keys = [key for key in sorted(first.keys() | other.keys()) if first.get(key) != other.get(key)]
    return ": " + "; ".join(
        f"{key} is {_short(first.get(key))} on process 0, {_short(other.get(key))} on process {other_rank}"
        for key in keys[:5]
    )


def _flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict with dotted keys (``encoder.d_model``)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, (list, tuple)):  # gene vocabularies run to hundreds of names
        return f"{len(value)} values {repr(list(value[:3]))[:-1]}, ...]"
    return text[: limit - 3] + "..."


def broadcast_module(module: torch.nn.Module) -> None:
    """Give every process the parameters and buffers of process 0."""
    if world()[1] == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def sum_across(values: Sequence[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all processes."""
    if world()[1] == 1:
        return [float(v) for v in values]
    total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


def sum_gradients(parameters: Sequence[torch.nn.Parameter]) -> None:
    """Replace every gradient by its sum over all processes, in one collective.

    A process that computed no gradient for a parameter contributes zeros (its
    share of the batch may be empty); a parameter no process computed a gradient
    for keeps ``grad = None``, so the optimiser skips it as it would on one process.
    """
    if world()[1] == 1:
        return
    device = parameters[0].device
    has_grad = torch.tensor([p.grad is not None for p in parameters], dtype=torch.float32, device=device)
    flat = torch.cat([
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters
    ])
    dist.all_reduce(has_grad)
    dist.all_reduce(flat)
    for p, used, chunk in zip(parameters, has_grad.tolist(), flat.split([p.numel() for p in parameters])):
        p.grad = chunk.view_as(p).clone() if used else None


def raise_any_error(error: BaseException | None) -> None:
    """Raise on every process when any process met an error (a collective: all wait here).

    A process raises its own ``error``; the others an OSError naming the first process
    that failed and its message. Without a process group, ``error`` is raised if
    there is one. That way no process is left waiting for the others in a collective
    when, for instance, process 0 cannot write the checkpoint.
    """
    rank, size = world()
    if size == 1:
        if error is not None:
            raise error
        return
    messages: list[str | None] = [None] * size
    dist.all_gather_object(messages, None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    failed = [r for r, message in enumerate(messages) if message is not None]
    if failed:
        raise OSError(f"process {failed[0]} failed (this is process {rank}): {messages[failed[0]]}")
