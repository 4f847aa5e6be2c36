"""Saving and loading masked gene models and their training state.

A checkpoint is one ``torch.save`` file holding plain Python values and tensors
only (so it loads with ``weights_only=True``):

- ``format``, ``version``;
- ``model_config`` (:attr:`MaskedGeneModel.config`: encoder hyper-parameters,
  layer factory import path, gene vocabulary, control genes, the training graph's
  radius: absent from checkpoints written before stgraph recorded it, which load
  with ``radius`` None) and ``model_state``;
- ``training`` (optional): the trainer's state, i.e. its configuration, metadata,
  optimiser state, step and loss history (every random draw of training is a
  function of the seed and the step, so no generator state is needed).
"""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch

from .._seeding import torch_rng_restored
from .._torch_files import read_torch_file
from .._validation import check_path
from ..nn.encoder import ConvFactory
from .mgm import MaskedGeneModel

CHECKPOINT_FORMAT = "stgraph.masked_gene_model"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike, model: MaskedGeneModel, training: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (and optionally a trainer state) to ``path`` atomically.

    Parameters
    ----------
    path
        Destination file; parent folders are created.
    model
        The model to save.
    training
        A trainer's :meth:`~stgraph.models.MaskedGeneTrainer.state_dict`.

    Returns
    -------
    The path written.

    Raises
    ------
    TypeError
        If ``path`` is not a string or ``os.PathLike``, or ``model`` is not a
        :class:`MaskedGeneModel` (an encoder alone, or the result of
        :func:`stgraph.tl.pretrain`, whose ``.model`` it is).
        Also if ``training`` holds values other than plain Python ones and tensors
        (e.g. NumPy numbers), which ``torch.load(weights_only=True)`` would refuse to
        load: nothing is written, a checkpoint already at ``path`` is left as it was.
    IsADirectoryError
        If ``path`` is a folder (nothing is written).
    OSError
        If the file cannot be written (e.g. the disk is full); the unfinished file is
        removed and a checkpoint already at ``path`` is left as it was.
    """
    path = _checkpoint_file(path)
    if not isinstance(model, MaskedGeneModel):
        # An encoder has a config too: its checkpoint was written, and failed to load with KeyError 'encoder'.
        raise TypeError(
            f"model must be a stgraph.models.MaskedGeneModel (tl.pretrain(...).model), got {type(model).__name__}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(
        format=CHECKPOINT_FORMAT,
        version=CHECKPOINT_VERSION,
        model_config=model.config,
        model_state={k: v.detach().cpu() for k, v in model.state_dict().items()},
        training=training,
    )
    partial = _partial(path)
    try:
        torch.save(payload, partial)
    except (OSError, RuntimeError) as err:  # torch's writer reports a full disk as a RuntimeError
        # A half-written file would only hold on to the disk space that ran out.
        partial.unlink(missing_ok=True)
        raise OSError(
            f"could not write the checkpoint {path} ({_free_space(path.parent)} free on its disk; the "
            f"previous checkpoint there, if any, is unchanged): {err}"
        ) from err
    _check_loadable(partial, path)
    # A crash mid-write must not destroy the previous checkpoint.
    os.replace(partial, path)
    return path


def _check_loadable(partial: Path, path: Path) -> None:
    """Read the unfinished file back as :func:`read_checkpoint` will, and remove it unless
    it loads: torch.save writes any object, and a ``training`` state holding NumPy values
    (or any class) gave a checkpoint that ``weights_only=True`` then refused to load."""
    try:
        torch.load(partial, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        partial.unlink(missing_ok=True)
        raise TypeError(
            f"the checkpoint {path} would not load (torch.load(weights_only=True) refuses what it "
            "holds); training must hold plain Python values and tensors, as "
            f"MaskedGeneTrainer.state_dict() does: {err}".splitlines()[0]
        ) from err


def _checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked not to be a folder: the finished file could not replace
    it (after the whole write, or the whole run), and the unfinished one was left beside it."""
    path = check_path("path", path)
    if path.is_dir():
        raise IsADirectoryError(f"the checkpoint path {path} is a folder: pass the path of a file (one inside it)")
    return path


def _partial(path: Path) -> Path:
    """Where a checkpoint is written before it replaces ``path``."""
    return path.with_name(path.name + ".partial")


def _free_space(folder: Path) -> str:
    """Free space of the disk of ``folder``, in MiB, or ``'unknown'``."""
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB"
    except OSError:
        return "unknown"


def check_writable(path: str | os.PathLike, size: int) -> None:
    """Raise unless a checkpoint of about ``size`` bytes can be written to ``path``.

    Creates the parent folders and writes and removes an empty file where
    :func:`save_checkpoint` writes, so that a run learns before training, not at
    its first checkpoint, that the folder is unusable.

    Raises
    ------
    OSError
        If ``path`` is a folder (IsADirectoryError), the folder it goes into cannot be
        created or written to, or its disk has less than ``size`` bytes free (the
        disk's free space is not checked where it cannot be read).
    """
    path = _checkpoint_file(path)
    probe = _partial(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OSError(f"cannot write the checkpoint {path}: {err}") from err
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    if free < size:
        raise OSError(
            f"the checkpoint {path} needs about {size / 2**20:.1f} MiB, but its disk has "
            f"{free / 2**20:.1f} MiB free"
        )


#: Entries every checkpoint has (``training`` may be absent or None).
REQUIRED_ENTRIES = ("format", "version", "model_config", "model_state")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw contents of a checkpoint file, on the CPU.

    Parameters
    ----------
    path
        File written by :func:`save_checkpoint`.

    Raises
    ------
    TypeError
        If ``path`` is not a string or ``os.PathLike``.
    FileNotFoundError
        If there is no file at ``path`` (a folder, such as the ``checkpoint_dir`` of
        :func:`stgraph.tl.pretrain`, is named as one, with a ``.pt`` file in it).
    OSError
        If the file cannot be opened.
    ValueError
        If the file is not a checkpoint: ``torch.load`` cannot read it (with
        ``weights_only=True``; a file cut short included), it is not a stamped dict, or it lacks an entry of
        :data:`REQUIRED_ENTRIES`; or if its version is not an integer, or newer than
        this stgraph's.
    """
    payload = read_torch_file(path, "stgraph masked gene model checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a stgraph masked gene model checkpoint")
    missing = [key for key in REQUIRED_ENTRIES if key not in payload]
    if missing:
        raise ValueError(f"{path} is not a complete stgraph masked gene model checkpoint: it lacks {missing}")
    version = payload["version"]
    # A hand-edited or foreign stamp: comparing a string with the version raised a bare TypeError.
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path} has checkpoint version {version!r}, not an integer: it is not a stgraph checkpoint")
    if version > CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint version {payload['version']}; this stgraph reads up to "
            f"{CHECKPOINT_VERSION}"
        )
    return payload


def model_from_checkpoint(
    payload: dict[str, Any], conv: type | ConvFactory | None = None, source: str = "the checkpoint"
) -> MaskedGeneModel:
    """Rebuild the model of a :func:`read_checkpoint` payload with its weights (the
    caller's torch random numbers are left as they were); ``source`` names the
    payload in the ValueError raised when its weights do not fit that model."""
    with torch_rng_restored():
        model = MaskedGeneModel.from_config(payload["model_config"], conv=conv)
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as err:  # torch lists the missing, unexpected and misshapen weights
        layer = "" if conv is None else f" with conv={getattr(conv, '__name__', type(conv).__name__)}"
        raise ValueError(
            f"the weights of {source} do not fit the model its configuration builds{layer}: {err}"
        ) from err
    return model


def load_model(path: str | os.PathLike, conv: type | ConvFactory | None = None) -> MaskedGeneModel:
    """Load a saved :class:`MaskedGeneModel` (CPU, eval mode).

    Parameters
    ----------
    path
        Checkpoint written by :func:`save_checkpoint`.
    conv
        Layer factory, needed only when the recorded one cannot be imported (for
        instance a class defined in a script, or in a module not on ``sys.path``)
        or was not recorded (a lambda, a function or class defined inside a
        function, a :func:`functools.partial` or a callable object).

    Raises
    ------
    TypeError
        If ``path`` is not a string or ``os.PathLike``.
    FileNotFoundError
        If there is no file at ``path`` (a folder included).
    OSError
        If the file cannot be opened.
    ValueError
        If the file is not a checkpoint (:func:`read_checkpoint`), ``conv`` is None
        and the recorded layer factory cannot be imported or was not recorded, or the
        saved weights do not fit the model rebuilt (with ``conv``, another layer than
        the one trained; a checkpoint of the default layer needs no ``conv``).
    """
    return model_from_checkpoint(read_checkpoint(path), conv=conv, source=str(path)).eval()
