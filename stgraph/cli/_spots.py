"""``stgraph enhance``: the spot enhancer on a Visium / ST ``.h5ad``."""
from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from ._steps import check_creatable, step, timing_rows, writing


def enhance(path: str, out: str, *, mode: str = "super_resolution", options: dict | None = None,
            library: str | None = None, tissue_only: bool = False, drop_empty: bool = False,
            overwrite: bool = False) -> dict:
    """Enhance the Visium / ST spots of the ``.h5ad`` file ``path``
    (:func:`stgraph.tl.enhance` with ``options``) and write the result to the new
    ``.h5ad`` file ``out``; the input is only read. tl.enhance's warnings and refusals
    advise the command's flags, or what to change in the file, where their own advice
    is Python code.

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
    library
        Enhance only the spots of this library (``--library``): of the ``obs`` column
        of library ids of ``uns['spatial']`` that :func:`stgraph.tl.enhance` refuses
        to hold several of. A file whose spots are all of that one library is taken whole.
    tissue_only
        Enhance only the spots with ``obs['in_tissue'] == 1`` (``--tissue-only``),
        after ``library``.
    drop_empty
        Leave out the spots without counts in ``X`` or the ``layer`` of ``options``
        (``--drop-empty``), after ``tissue_only``.
    overwrite
        Replace an existing file ``out``.

    Returns
    -------
    The summary rows the command prints (label: value): the spots of the input and,
    for ``library``, ``tissue_only`` and ``drop_empty``, how many each left out, and timings.

    Raises
    ------
    ValueError
        Before any work, for a ``path`` that is no file or an ``out`` that is the input,
        exists (without ``overwrite``), is not named ``.h5ad`` or lies where no folder can
        be created (missing folders are created); then for a file that is
        not an AnnData, for one written by ``stgraph enhance`` (its predicted spots
        have no counts: give the original slide), for a ``library`` that is none of
        the file's libraries (or a file without a column of them), for ``tissue_only`` on a file
        without ``obs['in_tissue']`` or without a spot in the tissue, for
        ``drop_empty`` on one without a spot with counts, for what
        :func:`stgraph.tl.enhance` refuses and for a write that fails.
    """
    import anndata

    from .. import tl
    from ..tl._enhance import library_columns

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
    layer = (options or {}).get("layer")
    libraries = library_columns(adata)
    with step(mode.replace("_", " "), timings), _in_command_terms(layer, libraries):
        left_out = {}
        kept = adata if library is None else _library_spots(adata, library, libraries, left_out)
        kept = _kept_spots(kept, tissue_only, drop_empty, layer, left_out)
        result = tl.enhance(kept, mode, progress=sys.stderr.isatty(), **(options or {}))
    with writing(out, timings):
        result.write_h5ad(target)
    return {
        "input": path,
        "spots": adata.n_obs,
        **left_out,
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


def _library_spots(adata, library: str, libraries: dict, left_out: dict):
    """The spots of ``adata`` (a view) whose library, in the first column of
    ``libraries`` (:func:`~stgraph.tl._enhance.library_columns`) that holds it, is
    ``library``; adds to ``left_out`` the summary row of how many others it left out."""
    if not libraries:
        raise ValueError(f"--library {library}: the file has no obs column of the library ids of uns['spatial'], "
                         "so its spots are of one slide; leave --library out")
    holding = [key for key, ids in libraries.items() if library in ids]
    if not holding:
        key, ids = next(iter(libraries.items()))
        raise ValueError(f"--library {library}: the file's spots are of the libraries {ids} (obs[{key!r}]); "
                         "give one of them")
    mine = (adata.obs[holding[0]] == library).to_numpy()
    left_out["left out (other libraries)"] = int((~mine).sum())
    return adata[mine]


def _kept_spots(adata, tissue_only: bool, drop_empty: bool, layer: str | None, left_out: dict):
    """The spots of ``adata`` to enhance (a view); adds to ``left_out`` the summary rows
    of how many ``--tissue-only`` and ``--drop-empty`` left out."""
    from ..spots._expression import spots_with_counts

    if tissue_only:
        column = adata.obs.get("in_tissue")
        if column is None:
            raise ValueError("--tissue-only: the file has no obs['in_tissue'] (scanpy's flag of the spots in the "
                             "tissue, 1 or 0); leave --tissue-only out")
        inside = (column == 1).to_numpy(dtype=bool, na_value=False)
        if not inside.any():
            raise ValueError(f"--tissue-only: none of the {len(column)} spots has obs['in_tissue'] == 1 "
                             f"(its values: {column.drop_duplicates().head(5).tolist()})")
        left_out["left out (off tissue)"] = int((~inside).sum())
        adata = adata[inside]
    if drop_empty:
        counted = spots_with_counts(adata, layer)
        if not counted.any():
            matrix = "X" if layer is None else f"--layer {layer}"
            raise ValueError(f"--drop-empty: none of the {len(counted)} spots has counts in {matrix}")
        left_out["left out (no counts)"] = int((~counted).sum())
        adata = adata[counted]
    return adata


@contextmanager
def _in_command_terms(layer: str | None, libraries: dict):
    """Give the advice of tl.enhance that is Python code (``layer`` is its counts
    layer, ``libraries`` the file's columns of library ids) as the command's flags, or
    as what to change in the file where the command has none, in the warnings and the
    ValueError of the block."""
    from ..spots._expression import COUNTS_HINT, RAW_HINT, missing_layer
    from ..spots._lattice import GRID_TYPES, SWAPPED_HINT, grid_argument, grid_hint, numeric_hint, offset_hint, visium_column
    from ..tl._enhance import ONE_GENE_HINT, OFF_TISSUE_HINT, empty_spots_hint, one_library_hint, unique_names_hint

    terms = {  # the longer first: RAW_HINT follows COUNTS_HINT
        COUNTS_HINT + RAW_HINT: "Give the layer with the raw counts as --layer; the command does not read the "
        "file's raw: if it holds them, write `adata.raw.to_adata()` to an .h5ad and give that",
        COUNTS_HINT: "Give the layer with the raw counts as --layer",
        OFF_TISSUE_HINT: "To enhance the tissue only, give --tissue-only.",
        empty_spots_hint(layer): "To leave them out, give --drop-empty.",
        ONE_GENE_HINT: "Give the .h5ad of the whole panel and select the gene from the output.",
        SWAPPED_HINT: "Swap obs['array_row'] and obs['array_col'] in the .h5ad and give it again.",
    }
    if layer is not None:
        terms[missing_layer(layer)] = f"--layer {layer}: the file has no such layer"
    for key, ids in libraries.items():
        terms[one_library_hint(key)] = f"Give --library with one of them to enhance its spots, e.g. --library {ids[0]}."
    for attribute in ("obs_names", "var_names"):
        terms[unique_names_hint(attribute)] = (
            f"make them unique in the .h5ad (e.g. with anndata's `{attribute}_make_unique`) and give it again."
        )
    for key in ("array_row", "array_col"):
        terms[numeric_hint(key)] = "convert it to integers in the .h5ad and give it again."
    for shift in (0.5, -0.5):
        terms[offset_hint(shift)] = (
            "Convert obs['array_col'] in the .h5ad to Visium's convention (columns step by 2 along a row), e.g. to "
            f"{visium_column(shift)}, and give it again."
        )
    for grid in GRID_TYPES:  # the hint first: it names the argument
        terms[grid_hint(grid)] = f"Give --grid {grid}, or leave --grid out to detect it."
        terms[grid_argument(grid)] = f"--grid {grid}"

    def translated(text: str) -> str:
        for python, command in terms.items():
            text = text.replace(python, command)
        return text

    show = warnings.showwarning

    def show_translated(message, *args, **kwargs) -> None:
        show(translated(str(message)), *args, **kwargs)

    with warnings.catch_warnings():
        warnings.showwarning = show_translated
        try:
            yield
        except ValueError as err:
            raise ValueError(translated(str(err))) from None
