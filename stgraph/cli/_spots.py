"""``stgraph enhance``: the spot enhancer on a Visium / ST ``.h5ad``."""
from __future__ import annotations

import sys
from pathlib import Path

from ._steps import check_creatable, step, timing_rows, writing


def enhance(path: str, out: str, *, mode: str = "super_resolution", options: dict | None = None,
            overwrite: bool = False) -> dict:
    """Enhance the Visium / ST spots of the ``.h5ad`` file ``path``
    (:func:`stgraph.tl.enhance` with ``options``) and write the result to the new
    ``.h5ad`` file ``out``; the input is only read.

    Parameters
    ----------
    path
        ``.h5ad`` file of the spots.
    out
        ``.h5ad`` file to write, not the input.
    mode
        ``"super_resolution"`` or ``"impute"``, as in :func:`stgraph.tl.enhance`.
    options
        Further keyword arguments of :func:`stgraph.tl.enhance` (``grid``, ``seed``, ...).
    overwrite
        Replace an existing file ``out``.

    Returns
    -------
    The summary rows the command prints (label: value), timings included.

    Raises
    ------
    ValueError
        Before any work, for a ``path`` that is no file or an ``out`` that is the input,
        exists (without ``overwrite``), is not named ``.h5ad`` or lies where no folder can
        be created (missing folders are created); then for a file that is
        not an AnnData, for one written by ``stgraph enhance`` (its predicted spots
        have no counts: give the original slide), for what
        :func:`stgraph.tl.enhance` refuses and for a write that fails.
    """
    import anndata

    from .. import tl
    from ..spots._expression import COUNTS_HINT

    source, target = Path(path), Path(out)
    if not source.is_file():
        raise ValueError(
            f"{path} is not a file: give an .h5ad of spots (for a Space Ranger folder, "
            "squidpy.read.visium(folder).write_h5ad('spots.h5ad') makes one)"
        )
    if target.suffix != ".h5ad":
        raise ValueError(f"--out {out}: name an .h5ad file, e.g. --out enhanced.h5ad")
    if target.resolve() == source.resolve():
        raise ValueError(f"--out {out}: that is the input; write the result to a new file")
    if target.exists() and not overwrite:
        raise ValueError(f"--out {out} exists; give --overwrite to replace it")
    check_creatable(out, target)
    timings: dict[str, float] = {}
    with step("read", timings):
        try:
            adata = anndata.read_h5ad(source)
        except (OSError, KeyError) as err:  # not HDF5, or HDF5 that is no AnnData
            raise ValueError(f"cannot read {path} as an AnnData .h5ad file ({err})") from None
    _check_not_an_output(path, adata)
    with step(mode.replace("_", " "), timings):
        try:
            result = tl.enhance(adata, mode, progress=sys.stderr.isatty(), **(options or {}))
        except ValueError as err:  # its advice on counts names the Python argument
            raise ValueError(str(err).replace(COUNTS_HINT, "Give the layer with the raw counts as --layer")) from None
    with writing(out, timings):
        result.write_h5ad(target)
    return {
        "input": path,
        "spots": adata.n_obs,
        "genes": adata.n_vars,
        "grid": result.uns["enhance"]["grid"],
        "mode": mode,
        "new spots": int(result.obs["imputed"].sum()),
        "written": out,
        **timing_rows(timings),
    }


def _check_not_an_output(path: str, adata) -> None:
    """Refuse, in the command's terms, a file of ``stgraph enhance``'s: tl.enhance's own
    refusal tells a Python user how to take its measured spots, which the command
    cannot; they are the original slide's."""
    from ..tl._enhance import predicted_spots

    n_predicted = predicted_spots(adata.obs)
    if n_predicted:
        raise ValueError(
            f"{path} was written by stgraph enhance: {n_predicted} of its {adata.n_obs} spots are "
            "predicted, not measured; give the original slide's .h5ad instead"
        )
