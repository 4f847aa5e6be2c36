"""Warnings attributed to the user's code, however deep in stgraph they are raised."""
from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.realpath(__file__)) + os.sep


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn with ``message``, reported at the first calling frame outside stgraph.

    A fixed ``stacklevel`` names the user's line only for one depth of helpers
    between the public function and the warning: the same helper reached from two
    public functions, or one more helper in between, would point inside stgraph,
    where the user cannot see which call warned (and Python's default action shows
    a warning once per line it is attributed to, so calls from two lines of the
    user's would share one report).
    """
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and os.path.realpath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
