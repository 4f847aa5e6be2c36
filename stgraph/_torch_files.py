"""Reading files written by ``torch.save``, with errors that name what was expected."""
from __future__ import annotations

import os
import pickle
from typing import Any

import torch

from ._validation import check_path

#: First bytes of a zip archive, the format of ``torch.save`` since torch 1.6.
ZIP_MAGIC = b"PK\x03\x04"


def read_torch_file(path: str | os.PathLike, what: str) -> Any:
    """The contents of a ``torch.save`` file, on the CPU (``weights_only=True``).

    Parameters
    ----------
    path
        The file.
    what
        What the file should be, for the messages (e.g. ``"stgraph pattern model checkpoint"``).

    Raises
    ------
    TypeError
        If ``path`` is not a string or ``os.PathLike``.
    FileNotFoundError
        If there is no file at ``path``; a folder is named as one, with the
        ``.pt`` files in it.
    OSError
        If the file cannot be opened (e.g. no permission to read it).
    ValueError
        If ``torch.load`` cannot read it, a file cut short included.
    """
    path = check_path("path", path)
    if path.is_dir():
        # The usual slip: the checkpoint_dir a run wrote into, for the file inside it.
        inside = sorted(p.name for p in path.glob("*.pt"))
        hint = f"; pass the file, e.g. {str(path / inside[0])!r}" if inside else ", which holds no .pt file"
        raise FileNotFoundError(f"no {what} at {path}: it is a folder{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    # Opened here, so that only a file that cannot be opened raises an OSError: torch's
    # zip reader reports some files cut short as an OSError (EINVAL), others as RuntimeError.
    with path.open("rb") as file:
        try:
            return torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # arbitrary bytes fail in the unpickler in many ways (KeyError, IndexError, ...)
            file.seek(0)
            cause = _zip_failure(err) if file.read(len(ZIP_MAGIC)) == ZIP_MAGIC else ""
            raise ValueError(
                f"{path} is not a {what}: torch.load cannot read it ({type(err).__name__}){cause}"
            ) from err


def _zip_failure(err: Exception) -> str:
    """Why ``torch.load`` failed with ``err`` on a zip archive, the format ``torch.save`` writes."""
    if isinstance(err, pickle.UnpicklingError):  # the archive is whole: its pickle holds a class
        return (
            ": a torch.save file of objects that torch.load(weights_only=True) does not load, such as a "
            "whole model saved with torch.save(model, path)"
        )
    return ": a torch.save file (zip archive) damaged or cut short, e.g. by an interrupted copy"
