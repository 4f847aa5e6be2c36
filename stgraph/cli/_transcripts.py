"""``stgraph demo`` and ``stgraph run``: the task heads on transcripts."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from .._formats import INPUT_FORMATS as FORMATS
from ._steps import check_creatable, step, timing_rows, writing

#: The task heads, in the order they run.
TOOLS = ("localization", "colocalization", "domains")
#: Radius of the within-cell neighbourhoods the domains compare (as in tutorial 2).
DOMAIN_RADIUS = 3.0
DEMO_DOMAINS = 2


def demo(radius: float, within: str, tasks: bool = True, drop_duplicates: bool = False) -> dict:
    """Load the embedded MERFISH sample, build its transcript graph, summarise it and,
    with ``tasks``, run the task heads on it (localization with the shipped pattern
    head, colocalization, two subcellular domains); with ``drop_duplicates`` without
    the molecules flagged ``duplicate`` (:func:`stgraph.datasets.merfish_u2os`).

    Parameters
    ----------
    radius
        Radius of the transcript graph, in µm (the colocalization's radius too).
    within
        ``"all"`` joins every pair within ``radius``, ``"cell"`` only pairs of one cell
        (:func:`stgraph.graph.transcript_graph`).
    tasks
        Run the task heads after the graph (``--graph-only`` turns them off).
    drop_duplicates
        Leave out the molecules flagged ``duplicate``.

    Returns
    -------
    The summary rows the command prints (label: value), timings included.
    """
    from .. import datasets

    timings: dict[str, float] = {}
    _warm_up_graph_kernels(radius, timings)
    with step("load sample", timings):
        sdata = datasets.merfish_u2os(drop_duplicates=drop_duplicates)
        flagged = int(sdata.points["transcripts"]["duplicate"].sum().compute())
    duplicates = (
        "left out (--drop-duplicates)" if drop_duplicates
        else f"{flagged:,} flagged, kept (--drop-duplicates leaves them out)"
    )
    summary = _analyse(sdata, radius, within, TOOLS if tasks else (), DEMO_DOMAINS, timings)
    return {"molecules": summary.pop("molecules"), "duplicate calls": duplicates, **summary, **timing_rows(timings)}


def run(
    path: str,
    out: str,
    *,
    format: str = "auto",
    radius: float = 1.0,
    within: str = "all",
    tools: Sequence[str] = TOOLS,
    n_domains: int = DEMO_DOMAINS,
    options: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """:func:`demo` on the user's data: read ``path`` (:func:`stgraph.io.read`, with
    the reader ``options``), draw the cell and nucleus outlines that localization needs
    where the data have none, run ``tools`` and write the result to the zarr store
    ``out``; the input is only read.

    Parameters
    ----------
    path
        Input folder or ``.zarr`` store, as :func:`stgraph.io.read` reads it.
    out
        Zarr store to write, outside the input and not holding it (a new one named
        ``*.zarr``).
    format
        Input format, one of :data:`FORMATS`, or ``"auto"`` to tell it from the files.
    radius, within
        As in :func:`demo`.
    tools
        Task heads to run, a subset of :data:`TOOLS` (none: the graph alone).
    n_domains
        Number of subcellular domains (``"domains"`` only).
    options
        Keyword arguments of the format's reader (``pixel_size``, ``points_key``, ...).
    overwrite
        Replace an existing zarr store ``out``.

    Returns
    -------
    The summary rows the command prints (label: value), timings included.

    Raises
    ------
    ValueError
        Before any work, for an input whose format cannot be told, an option its format
        does not take, or an ``out`` that cannot be written (inside the input or holding
        it, an existing store without ``overwrite``, anything but a zarr store, a new
        store whose name does not end in ``.zarr``); then for
        data the reader refuses, with the flag that fixes it, molecules in no cell (with
        ``tools``), data the tools refuse, and for a write that fails.
    """
    from ..io._read import resolve_format

    name = resolve_format(path, format)
    options = options or {}
    _check_options(name, options)
    _check_out(path, out, overwrite)
    timings: dict[str, float] = {}
    _warm_up_graph_kernels(radius, timings)
    with step("read", timings):
        sdata = _read(path, name, format, options)
    _check_cells(sdata, path, tools)
    before = _contents(sdata)
    drawn = _draw_missing_outlines(sdata, timings) if "localization" in tools else {}
    summary = _analyse(sdata, radius, within, tools, n_domains, timings)
    added = {where: sorted(keys - before.get(where, set())) for where, keys in _contents(sdata).items()}
    with writing(out, timings), warnings.catch_warnings():
        # zarr's notice of a future default, once per array: nothing the user can act on.
        warnings.filterwarnings("ignore", message="zarr v3 autosharding", category=UserWarning)
        sdata.write(out, overwrite=overwrite)
    return {
        "input": f"{path} ({name})",
        **drawn,
        **summary,
        "new in the store": "; ".join(f"{where}: {', '.join(keys)}" for where, keys in added.items() if keys)
        or "nothing (the tools replaced their earlier results)",
        "written": out,
        **timing_rows(timings),
    }


def _contents(sdata) -> dict[str, set[str]]:
    """Where the tools write, and what is there: the points' columns, the shapes, and
    each table's ``obs`` / ``var`` columns, layers and ``uns`` keys."""
    contents = {f"points[{name!r}]": set(points.columns) for name, points in sdata.points.items()}
    contents["shapes"] = set(sdata.shapes)
    for name, table in sdata.tables.items():
        for part, keys in (("obs", table.obs.columns), ("var", table.var.columns),
                           ("layers", table.layers.keys()), ("uns", table.uns.keys() - {"spatialdata_attrs"})):
            contents[f"tables[{name!r}].{part}"] = set(keys)
    return contents


#: The command-line flag of each reader option :func:`main` passes.
FLAGS = {
    "pixel_size": "--pixel-size", "z_step": "--z-step", "z": "--z", "points_key": "--points", "drop_controls": "--drop-controls",
    "drop_z_duplicates": "--drop-z-duplicates",
}


def _check_options(name: str, options: dict) -> None:
    """Refuse, in the command's words, a reader option the format ``name`` does not take."""
    from ..io._read import reader_options

    for option in options:
        takes = [f for f in FORMATS if option in reader_options(f)]
        if name not in takes:
            raise ValueError(f"{FLAGS.get(option, option)} does not apply to {name} input, only to {', '.join(takes)}")


def _check_out(path: str, out: str, overwrite: bool) -> None:
    """Refuse, before any work, an ``out`` the result cannot be written to or that would
    change the input ``path``."""
    from ..io._read import detect_format

    if not out.strip():
        raise ValueError("--out is empty: name the new zarr store, e.g. --out result.zarr")
    target, source = Path(out).resolve(), Path(path).resolve()
    if target == source:
        raise ValueError(f"--out {out}: that is the input; write the result to a new store")
    if source in target.parents:
        raise ValueError(f"--out {out} lies inside the input {path}, which is only read; write the result outside it")
    if target in source.parents:
        raise ValueError(f"--out {out} holds the input {path}; write the result to a new store")
    if target.exists():
        try:
            is_store = detect_format(target) == "zarr"
        except ValueError:  # a file, or a folder of nothing stgraph reads
            is_store = False
        if not is_store:  # SpatialData replaces only zarr stores: --overwrite would not help
            raise ValueError(f"--out {out} exists and is not a zarr store; name a new store")
        if not overwrite:
            raise ValueError(f"--out {out} exists; give --overwrite to replace it")
        return
    if target.suffix != ".zarr":  # a new folder named result.h5ad is no file anndata reads
        raise ValueError(f"--out {out}: name a .zarr store, e.g. --out result.zarr")
    check_creatable(out, target)


def _read(path: str, name: str, format: str, options: dict):
    """:func:`stgraph.io.read` with what the reader refuses said in the command's words."""
    from .. import io

    try:
        with warnings.catch_warnings():
            # spatialdata's advice on an older store, to write it anew with sdata.write():
            # the command writes its result to a new store, in the current format.
            warnings.filterwarnings("ignore", message="SpatialData is not stored in the most current format",
                                    category=UserWarning)
            return io.read(path, format=name, **options)
    except KeyError as err:  # from_spatialdata: the store has no such points element
        raise ValueError(f"{err.args[0]}; --points names the one holding the molecules") from None
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"{err}{_format_hint(path, format)}") from None


def _check_cells(sdata, path: str, tools: Sequence[str]) -> None:
    """Refuse, in the command's words, molecules in no cell: every task head works on the
    molecules of each cell, and the tools' own refusals advise Python arguments."""
    from ..io._schema import CELL

    points = sdata.points["transcripts"]
    if tools and not int(points[CELL].count().compute()):  # the readers give every point a cell_id
        raise ValueError(
            f"no molecule of {path} is assigned to a cell: {', '.join(tools)} work on the molecules of each "
            f"cell; give data segmented into cells (a store's points name theirs in a {CELL} column or by "
            "their instance_key)"
        )


def _format_hint(path: str, format: str) -> str:
    """Where ``--format`` named another format than the files show, say so."""
    from .. import io

    if format == "auto":
        return ""
    try:
        detected = io.detect_format(path)
    except ValueError:
        return ""
    return f" (--format {format}, but {path} holds {detected} files: leave --format out)" if detected != format else ""


def _warm_up_graph_kernels(radius: float, timings: dict[str, float]) -> None:
    import torch

    from ..graph import radius_graph

    # Numba compiles the graph kernels on their first call and caches them on disk;
    # warming them up on two points keeps that one-off cost out of the graph's time.
    with step("load graph kernels (compiled on the first run)", timings):
        radius_graph(torch.zeros(2, 2), radius, return_distance=True)


def _analyse(sdata, radius: float, within: str, tools: Sequence[str], n_domains: int, timings: dict) -> dict:
    """Build the transcript graph of ``sdata``, summarise it and run ``tools`` in place."""
    from ..graph import transcript_graph

    with step("build transcript graph", timings):
        graph = transcript_graph(sdata, radius, within=within)
    n, e = graph.num_nodes, graph.num_edges
    # Genes with a molecule: a vocabulary can hold more (unused categories of a crop).
    present = graph.gene.unique().numel()
    controls = int(graph.gene[graph.is_control].unique().numel())
    summary = {
        "molecules": n,
        "genes": present - controls,
        "control probes": controls,
        "cells": len(graph.cell_names),
        "radius (µm)": str(float(radius)),  # as given: three decimals would show 0.0005 as 0.001
        "edges": e,
        "mean degree": e / max(n, 1),
    }
    if "localization" in tools:
        summary.update(_localization(sdata, timings))
    if "colocalization" in tools:
        summary.update(_colocalization(sdata, radius, timings))
    if "domains" in tools:
        summary.update(_domains(sdata, n_domains, timings))
    return summary


def _draw_missing_outlines(sdata, timings: dict[str, float]) -> dict:
    """Draw, around the molecules, the cell outlines (and the nucleus outlines, where
    the molecules carry ``in_nucleus``) that ``sdata`` lacks; the summary rows naming
    what was drawn and counting the cells too small for an outline."""
    from .. import io
    from ..io._schema import CELL

    points = sdata.points["transcripts"]
    missing = [kind for kind, key in (("cell", "cell_boundaries"), ("nucleus", "nucleus_boundaries"))
               if key not in sdata.shapes and (kind == "cell" or "in_nucleus" in points.columns)]
    if not missing:
        return {}
    with step("draw missing outlines", timings):
        for kind in missing:
            io.outlines_from_transcripts(sdata, kind=kind)
    rows = {"outlines drawn from the transcripts": ", ".join(f"{kind}_boundaries" for kind in missing)}
    # Localization then warns of these cells "without an outline": the row says why.
    small = int(points[CELL].nunique().compute()) - len(sdata.shapes["cell_boundaries"]) if "cell" in missing else 0
    if small:
        rows["cells without a drawn outline"] = f"{small:,} (too few molecules; localization leaves them out)"
    return rows


def _localization(sdata, timings: dict[str, float]) -> dict:
    from .. import tl
    from ..localization import PATTERNS

    with step("localization (shipped pattern head)", timings):
        tl.localization(sdata, seed=0)
    table = sdata.tables["table"]
    top = table.uns["lpp"]["top_pattern"].value_counts()
    nuclear = table.var["nuclear_score"].dropna().sort_values(ascending=False)
    return {
        "scored cell-genes": len(table.uns["lpp"]),
        **{f"top pattern {p}": int(top.get(p, 0)) for p in PATTERNS},
        "most nuclear genes": ", ".join(nuclear.index[:3]),
    }


def _colocalization(sdata, radius: float, timings: dict[str, float]) -> dict:
    from .. import tl

    with step("colocalization", timings):
        pairs = tl.colocalization(sdata, radius=radius, seed=0).table
    found = pairs[(pairs["gene_a"] != pairs["gene_b"]) & (pairs["fdr"] < 0.05)].sort_values("score", ascending=False)
    # A pair is scored as (A, B) and as (B, A): count and name it once, by its higher score.
    named = zip(found["gene_a"].astype(str), found["gene_b"].astype(str))
    unordered = list(dict.fromkeys(tuple(sorted(pair)) for pair in named))
    return {
        "colocalized gene pairs (FDR < 5 %)": len(unordered),
        "strongest pairs": ", ".join(f"{a}-{b}" for a, b in unordered[:3]) or "none",
    }


def _domains(sdata, n_domains: int, timings: dict[str, float]) -> dict:
    import pandas as pd

    from .. import tl

    with step(f"domains ({n_domains}, gene composition)", timings):
        domains = tl.domains(sdata, radius=DOMAIN_RADIUS, n_domains=n_domains, seed=0)
    sizes = pd.Series(domains.labels).value_counts()
    leaders = domains.enrichment.groupby("domain").head(1)
    return {
        f"domain {d}": f"{sizes.get(d, 0):,} molecules, led by {gene}"
        for d, gene in zip(leaders["domain"], leaders["gene"])
    }
