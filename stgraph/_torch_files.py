"""Reading files written by ``torch.save``, with errors that name what was expected."""
from __future__ import annotations

import os
from typing import Any

import torch

from ._validation import check_path


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
        If there is no file at ``path`` (a folder included).
    ValueError
        If ``torch.load`` cannot read it.
    """
    path = check_path("path", path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:  # the file could not be read at all: not a question of its contents
        raise
    except Exception as err:  # arbitrary bytes fail in the unpickler in many ways (KeyError, IndexError, ...)
        raise ValueError(f"{path} is not a {what}: torch.load cannot read it ({type(err).__name__})") from err
