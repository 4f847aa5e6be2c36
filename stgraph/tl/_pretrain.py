"""Masked gene modelling pretraining of a transcript encoder."""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import Data

from .._seeding import torch_seeded
from .._validation import check_bool, check_int, check_path, check_seed
from ..data.batching import cell_units, tile_units
from ..models.checkpoint import read_checkpoint
from ..models.mgm import MaskedGeneModel
from ..models.trainer import MaskedGeneTrainer, TrainingConfig
from ..nn.conv import SpatialTransformerConv
from ..nn.encoder import ConvFactory, TranscriptEncoder, check_conv_kwargs, check_default_heads
from ..nn.positional import DEFAULT_PE_SCALE
from ._graph_input import checked_graph

#: File name of the checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "masked_gene_model.pt"
#: Ratio of the largest to the smallest initial distance penalty of the default layer.
LAMBDA_SPAN = 32.0


def distance_penalty_ladder(radius: float, heads: int) -> list[float]:
    """Initial per-head distance penalties (µm⁻¹) of the default layer.

    Geometric from ``1 / radius`` to ``LAMBDA_SPAN / radius``: the first head starts
    almost uniform over the radius, the last one focused on the nearest
    transcripts (a penalty of 32 nats at the radius), whatever the radius.
    """
    if heads == 1:
        return [1.0 / radius]
    return [LAMBDA_SPAN ** (h / (heads - 1)) / radius for h in range(heads)]


@dataclasses.dataclass
class PretrainResult:
    """Outcome of :func:`pretrain`."""

    #: The trained model (eval mode, on the training device).
    model: MaskedGeneModel
    #: The transcript graph it was trained on (all cells, held-out ones included).
    graph: Data
    #: Names of the cells whose transcripts were never seen in training, in the graph's cell order.
    held_out_cells: list[str]
    #: ``[N]`` bool, the transcripts training could use.
    train_mask: torch.Tensor
    #: Loss of every step; NaN for a step whose batch had no target token (no update made).
    history: list[float]
    #: The trainer, to continue training or save (``trainer.save(path)``).
    trainer: MaskedGeneTrainer


def _transcript_graph(data: Any, radius: float | None, within: str, max_num_neighbors: int | None) -> Data:
    if isinstance(data, Data):
        checked_graph(data, radius, ("gene", "pos", "edge_index", "gene_names"))
        if data.get("radius") is None and radius is None:
            raise ValueError("the graph has no 'radius' field: pass radius=")
        _check_graph_options(data, within, max_num_neighbors)
        return data
    if radius is None:
        raise ValueError("radius= (µm) is required to build the transcript graph")
    from ..graph import transcript_graph

    return transcript_graph(data, radius, within=within, max_num_neighbors=max_num_neighbors)


def _check_graph_options(graph: Data, within: str, max_num_neighbors: int | None) -> None:
    """Refuse the graph-building options that a graph given as data would silently ignore."""
    if max_num_neighbors is not None:
        raise ValueError(
            f"max_num_neighbors={max_num_neighbors} applies when building the graph; the graph "
            "given as data is used as built"
        )
    if within == "cell":
        source, target = graph.edge_index
        cell = graph.get("cell")
        if cell is None or bool(((cell[source] != cell[target]) | (cell[target] < 0)).any()):
            raise ValueError(
                "within='cell', but the graph given as data has edges across cells or between "
                "unassigned transcripts: build it with stgraph.graph.transcript_graph(..., within='cell')"
            )


def _requested_held_out(held_out_cells: Any) -> int | list[str] | None:
    """``held_out_cells`` checked for type and repeats: None, a count, or distinct names."""
    if held_out_cells is None:
        return None
    if isinstance(held_out_cells, str):
        raise TypeError("held_out_cells must be a count or a list of cell names, not a string")
    if isinstance(held_out_cells, (bool, np.bool_, float, np.floating)):
        raise TypeError(
            f"held_out_cells must be a count (int) or a list of cell names, got {held_out_cells!r}"
        )
    if isinstance(held_out_cells, (int, np.integer)):
        return int(held_out_cells)
    names = [str(c) for c in held_out_cells]
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise ValueError(f"held_out_cells names some cells more than once: {repeated[:10]}")
    return names


def _held_out(graph: Data, requested: int | list[str] | None, seed: int) -> list[str]:
    if requested is None:
        return []
    names = [str(c) for c in graph.get("cell_names") or []]
    if isinstance(requested, int):
        # Drawn among the cells with transcripts: a crop keeps the names of the cells it cut away.
        cell = graph.get("cell")
        present = [] if cell is None else torch.unique(cell[cell >= 0]).tolist()
        # Zero holds out nothing, also where there is no cell to draw from.
        if requested < 0 or (requested and requested >= len(present)):
            raise ValueError(
                f"held_out_cells={requested} must be in [0, {len(present)}) for a graph of "
                f"{len(present)} cells with transcripts"
            )
        chosen = np.random.default_rng(seed).choice(len(present), size=requested, replace=False)
        return [names[present[k]] for k in sorted(chosen)]
    unknown = sorted(set(requested) - set(names))
    if unknown:
        raise ValueError(f"held-out cells not in the graph: {unknown[:10]}")
    # In the graph's order, not the caller's: the list is saved in the checkpoint's
    # metadata, and a set's order changes with each process's hash seed (resume and
    # torch.distributed would find other training data).
    wanted = set(requested)
    return [name for name in names if name in wanted]


#: Graph fields a run's training reads, fingerprinted by :func:`data_digest`.
DIGEST_FIELDS = ("gene", "pos", "edge_index", "cell", "is_control")


def _check_digest_recorded(path: Path, metadata: dict[str, Any]) -> None:
    """Refuse a checkpoint written before its metadata held ``data_digest`` (its other
    metadata as this run's), saying so: the trainer would call it other training data,
    which it may not be; it cannot be told."""
    saved = (read_checkpoint(path).get("training") or {}).get("metadata")
    if saved is None or "data_digest" in saved:
        return
    if saved == {key: value for key, value in metadata.items() if key != "data_digest"}:
        raise ValueError(
            f"{path} predates the data digest (data_digest) stgraph records in a checkpoint: its training "
            "data cannot be verified to be this graph's, so it is not resumed; train afresh (resume=False "
            "replaces it) or pass another checkpoint_dir"
        )


def data_digest(graph: Data) -> str:
    """Hexadecimal BLAKE2b fingerprint of the graph's :data:`DIGEST_FIELDS` (values,
    shapes and dtypes).

    Saved in the checkpoint's metadata and compared across processes, it tells
    apart data the counts alone do not: a graph built with another ``within`` or
    ``max_num_neighbors``, or another sample or crop of as many transcripts. (The
    gene vocabulary is part of the model's configuration, compared on its own.)
    """
    digest = hashlib.blake2b(digest_size=16)
    for field in DIGEST_FIELDS:
        value = graph.get(field)
        if value is None:
            digest.update(f"|{field}: none".encode())
            continue
        array = np.ascontiguousarray(value.cpu().numpy())
        digest.update(f"|{field}: {array.dtype} {array.shape}".encode())
        digest.update(array)  # hashed in place: the edges of a large graph are not copied
    return digest.hexdigest()


def _check_two_genes(graph: Data, train_mask: torch.Tensor) -> None:
    """Refuse training transcripts of a single gene, controls aside (none at all is
    refused before): a masked transcript's gene would be known without looking at
    its neighbours (loss 0)."""
    targets = train_mask if graph.get("is_control") is None else train_mask & ~graph.is_control
    genes = torch.unique(graph.gene[targets]).tolist()
    if len(genes) == 1:
        raise ValueError(
            f"the training transcripts hold one gene ({graph.gene_names[genes[0]]!r}) that is not a control "
            "probe: masked gene modelling needs at least two to tell apart"
        )


def _no_edges_message(graph: Data, train_mask: torch.Tensor, radius: float, batch_by: str) -> str:
    """Why a run whose units have no edge is refused, with the distance that would give some."""
    where = " in a cell" if batch_by == "cell" else ""
    message = (
        f"no two training transcripts{where} are within radius={radius:g} µm of each other: every "
        "transcript would see only itself, and the model could learn the genes' frequencies only"
    )
    pos = graph.pos[train_mask].double().numpy()
    if len(pos) < 2:
        return message + " (there is one training transcript)"
    nearest = np.median(cKDTree(pos).query(pos, k=2)[0][:, 1])
    return message + f"; use a larger radius (median distance of a training transcript to its nearest: {nearest:.3g} µm)"


def _checkpoint_path(checkpoint_dir: str | Path | None) -> Path | None:
    """The checkpoint file of ``checkpoint_dir``, checked before training rather than
    found unusable at the first save (or skipped by ``resume``)."""
    if checkpoint_dir is None:
        return None
    folder = check_path("checkpoint_dir", checkpoint_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"checkpoint_dir {str(folder)!r} is an existing file, not a folder")
    path = folder / CHECKPOINT_NAME
    if path.exists() and not path.is_file():
        raise ValueError(f"{str(path)!r} is a folder, where the checkpoint file goes")
    return path


def pretrain(
    data: Any,
    *,
    radius: float | None = None,
    within: Literal["all", "cell"] = "all",
    max_num_neighbors: int | None = None,
    d_model: int = 64,
    n_layers: int = 2,
    heads: int = 4,
    conv: type | ConvFactory | None = None,
    conv_kwargs: dict[str, Any] | None = None,
    dropout: float = 0.0,
    pe_scale: float = DEFAULT_PE_SCALE,
    batch_by: Literal["tile", "cell"] = "tile",
    tile_size: float = 10.0,
    batch_size: int = 8,
    steps: int | None = None,
    epochs: int = 1,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    grad_clip: float | None = 1.0,
    mask_rate: float = 0.15,
    held_out_cells: int | Sequence[str] | None = None,
    device: str = "auto",
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> PretrainResult:
    """Pretrain a transcript encoder by masked gene modelling.

    Every transcript is a token (gene embedding + positional encoding); 15 % of
    the non-control tokens are selected per step and corrupted BERT-style (80 %
    ``[MASK]``, 10 % random gene, 10 % unchanged), and the model is trained to
    predict their genes from their radius-graph neighbourhood
    (:mod:`stgraph.models.masking`). Negative controls (the genes of transcripts
    flagged ``is_control``, in any cell, held-out ones included) are context only:
    never targets, never random replacements.

    Parameters
    ----------
    data
        :class:`~spatialdata.SpatialData` or transcript table (as read by
        :mod:`stgraph.io`), turned into a graph by
        :func:`stgraph.graph.transcript_graph`; or such a graph itself.
    radius
        Radius of the transcript graph in µm (taken from the graph when given one).
    within
        ``'all'``: edges between any transcripts; ``'cell'``: within cells only (a
        graph given as ``data`` is used as built, and must then have no other edges).
    max_num_neighbors
        Cap on neighbours per transcript when building the graph (not with a graph
        given as ``data``).
    d_model, n_layers, heads, conv, conv_kwargs, dropout, pe_scale
        Encoder hyper-parameters (:class:`~stgraph.nn.TranscriptEncoder`;
        ``d_model`` a multiple of ``heads``); 2D or 3D
        coordinates come from the graph: points with ``z`` give a 3D encoder (also
        where every ``z`` is equal, whose ``z`` channels then carry nothing while x
        and y get fewer channels: 20 each of ``d_model=64`` against 32 in 2D; drop
        the column of single-plane data), which needs data with ``z``. With
        the default layer (``conv`` None or
        :class:`~stgraph.nn.conv.SpatialTransformerConv`), the distance penalties
        start at :func:`distance_penalty_ladder` of the radius unless ``conv_kwargs``
        sets ``lambda_init``.
    batch_by
        ``'tile'``: units are square tiles of ``tile_size`` µm with a context halo
        of ``n_layers * radius`` µm (exact embeddings of the tile's transcripts);
        ``'cell'``: units are whole cells with their within-cell edges
        (unassigned transcripts are left out). See :mod:`stgraph.data.batching`.
    tile_size
        Tile side in µm.
    batch_size
        Units per mini-batch.
    steps
        Optimiser steps; default ``epochs`` passes over the units.
    epochs
        Passes over the units when ``steps`` is None.
    lr, weight_decay
        AdamW learning rate and weight decay.
    warmup_steps
        Linear warm-up steps before the cosine decay, at most the run's steps; default
        ``min(100, steps // 10)``.
    grad_clip
        Maximum global gradient norm; None to disable.
    mask_rate
        Fraction of tokens selected as targets.
    held_out_cells
        Cells whose transcripts (and edges) are kept out of training entirely:
        a collection of distinct cell names (any order), or a count (int) of cells
        drawn with ``seed`` among those with transcripts in the graph.
    device
        ``'cpu'``, ``'cuda'`` or ``'auto'`` (CUDA when available).
    seed
        Non-negative seed of the initial weights, batch order, masks, dropout and the held-out
        draw; two runs with the same seed are identical on the CPU with the same number
        of torch threads. Another thread count sums in another order, so runs drift
        apart by rounding: after 20 steps with one and with two threads, losses within
        5e-7 and weights within 1.2e-7, except the attention's key biases (which the
        softmax ignores, so Adam steps them on rounding noise alone: up to 6e-5); the
        two models' colocalization (pairs passing the FDR) and domain labels were the same.
    checkpoint_dir
        Folder of the checkpoint ``masked_gene_model.pt`` (weights, configuration,
        gene vocabulary, optimiser, step), written every ``checkpoint_every`` steps
        and at the end (created if needed, and checked writable, with room for the
        checkpoint, before the first step). Without ``resume`` a checkpoint already
        there is replaced.
    checkpoint_every
        Steps between checkpoints; only at the end when None. Needs ``checkpoint_dir``.
    resume
        Continue from the checkpoint in ``checkpoint_dir`` when there is one (its
        configuration must match: the model and training settings, and the training
        data, i.e. the radius, batching, held-out cells and the graph's transcripts
        and edges, by their counts and a digest of the genes, positions, cells,
        control flags and edges); the result equals an uninterrupted run.
    progress
        Show a tqdm progress bar.

    Returns
    -------
    :class:`PretrainResult` with the fitted model; ``data`` is not modified.

    Notes
    -----
    Run under ``torchrun`` with a :mod:`torch.distributed` process group
    initialised, every process calls ``pretrain`` with the same data and arguments
    and training is data-parallel (see :class:`~stgraph.models.MaskedGeneTrainer`):
    each process trains its share of every batch of ``batch_size`` units, on its own
    GPU (``LOCAL_RANK``) with ``device='cuda'`` or ``'auto'``, and the result is the
    model one process would train (with ``dropout=0``). Process 0 writes the
    checkpoint and shows the progress bar.

    Raises
    ------
    ValueError
        If an argument is invalid, e.g. ``d_model``, ``n_layers``, ``heads`` or
        ``batch_size`` below 1, a negative ``epochs``, ``steps``, ``warmup_steps`` or
        ``seed``, ``warmup_steps`` above the run's steps, ``d_model`` not a multiple of ``heads``,
        ``checkpoint_every`` or ``resume`` without ``checkpoint_dir``, a
        ``checkpoint_dir`` that is an existing file (or holds a folder named
        ``masked_gene_model.pt``), ``radius``
        differing from the radius of the graph given as ``data``, ``within`` neither
        ``'all'`` nor ``'cell'``, ``within='cell'`` with a given graph that has edges
        across cells, ``max_num_neighbors`` with a given graph,
        ``held_out_cells`` naming a cell twice or a cell not in the graph, or holding
        out every transcript, ``tile_size`` so much smaller than the halo of
        ``n_layers * radius`` that a tile's unit would gather more than 100 tiles, every
        training transcript a control probe or all the others of one gene, no two
        training transcripts within ``radius`` (within a cell, with
        ``batch_by='cell'``: the model would see no context), ``batch_by='cell'``
        with no training transcript in a cell, an encoder setting
        :class:`~stgraph.nn.TranscriptEncoder` refuses (``dropout`` outside
        ``[0, 1)``, ``pe_scale`` not positive and finite), or with ``resume`` a
        checkpoint whose model or training configuration or metadata differ from this run's
        (:meth:`~stgraph.models.MaskedGeneTrainer.restore`; other transcripts or edges
        included, e.g. a graph built with another ``within`` or ``max_num_neighbors``)
        or that predates the data digest (and so cannot be checked against the graph);
        under :mod:`torch.distributed`, processes that differ in data (as for
        ``resume``), settings or, after ``resume``, in the step they start from (a
        ``checkpoint_dir`` not shared by all of them).
    OSError
        If ``checkpoint_dir`` cannot be created or written to, or its disk lacks the
        room for a checkpoint (before training), or a checkpoint cannot be written
        during training (the previous one is kept); under :mod:`torch.distributed`
        on every process (:meth:`~stgraph.models.MaskedGeneTrainer.fit`).
    TypeError
        If ``held_out_cells`` is a string, a bool or a float, one of the counts above
        is not an integer, ``resume`` or ``progress`` is not a bool, ``dropout`` or
        ``pe_scale`` is not a real number, ``conv_kwargs`` is not a mapping,
        ``checkpoint_dir`` is not a path, or ``conv`` builds a layer whose
        ``forward`` does not take ``edge_dist`` third (wrap it in
        :class:`~stgraph.nn.conv.EdgeDistAdapter`).
    """
    if batch_by not in ("tile", "cell"):
        raise ValueError(f"batch_by must be 'tile' or 'cell', got {batch_by!r}")
    if within not in ("all", "cell"):  # transcript_graph's check, also for a graph given as data
        raise ValueError(f"within must be 'all' or 'cell', got {within!r}")
    resume = check_bool("resume", resume)
    progress = check_bool("progress", progress)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError(f"checkpoint_every={checkpoint_every} needs checkpoint_dir: where to write the checkpoints")
    checkpoint = _checkpoint_path(checkpoint_dir)
    for name, value in (("d_model", d_model), ("n_layers", n_layers), ("heads", heads), ("batch_size", batch_size)):
        check_int(name, value)
    for name, value in (("epochs", epochs), ("steps", steps), ("warmup_steps", warmup_steps)):
        if value is not None:
            check_int(name, value, minimum=0)
    seed = check_seed(seed)  # a NumPy integer would fail in torch.Generator.manual_seed
    conv_kwargs = check_conv_kwargs(conv_kwargs)
    if conv in (None, SpatialTransformerConv):  # that layer's rule, checked before the graph
        check_default_heads(d_model, heads)
    requested_held_out = _requested_held_out(held_out_cells)
    graph = _transcript_graph(data, radius, within, max_num_neighbors)
    radius = float(graph.get("radius") or radius)
    gene_names = [str(g) for g in graph.gene_names]
    held_out = _held_out(graph, requested_held_out, seed)
    train_mask = torch.ones(graph.num_nodes, dtype=torch.bool)
    if held_out:
        index = {str(c): k for k, c in enumerate(graph.cell_names)}
        train_mask = ~torch.isin(graph.cell, torch.tensor([index[c] for c in held_out]))
        if not bool(train_mask.any()):
            raise ValueError(
                f"held_out_cells holds out all {len(held_out)} cells and no transcript is outside them: "
                "none is left to train on"
            )
    # Being a control probe is a property of the panel, like the gene vocabulary read from
    # the whole graph: a control seen only in held-out cells is no target there either.
    is_control = graph.get("is_control")
    control_genes = []
    if is_control is not None:
        control_genes = sorted({gene_names[g] for g in graph.gene[is_control].tolist()})
        if not bool((train_mask & ~is_control).any()):
            raise ValueError(
                "every training transcript is a control probe (is_control): there is no gene to "
                "mask and predict"
            )
    _check_two_genes(graph, train_mask)
    if batch_by == "tile":
        units = tile_units(graph, tile_size, halo=n_layers * radius, allowed=train_mask)
    else:
        units = cell_units(graph, allowed=train_mask)
        if not units:
            raise ValueError(
                "batch_by='cell', but no training transcript is assigned to a cell (cell_id missing or "
                "all NaN): use batch_by='tile'"
            )
    if not any(unit.edge_index.size(1) for unit in units):
        raise ValueError(_no_edges_message(graph, train_mask, radius, batch_by))

    if steps is None:
        steps = epochs * math.ceil(len(units) / batch_size)
    config = TrainingConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=min(100, steps // 10) if warmup_steps is None else warmup_steps,
        grad_clip=grad_clip,
        mask_rate=mask_rate,
        seed=seed,
    )
    if conv in (None, SpatialTransformerConv):
        # The ladder is this tool's default lambda_init, however the default layer is asked for.
        conv_kwargs = {"lambda_init": distance_penalty_ladder(radius, heads), **conv_kwargs}
    with torch_seeded(seed):
        encoder = TranscriptEncoder(
            len(gene_names),
            d_model,
            n_layers,
            heads,
            conv=conv,
            conv_kwargs=conv_kwargs,
            dropout=dropout,
            n_dims=graph.pos.size(1),
            pe_scale=pe_scale,
        )
        model = MaskedGeneModel(encoder, gene_names, control_genes, radius=radius)
    metadata = dict(
        radius=radius,
        batch_by=batch_by,
        tile_size=float(tile_size),
        num_nodes=int(graph.num_nodes),
        num_edges=int(graph.edge_index.size(1)),
        held_out_cells=held_out,
        data_digest=data_digest(graph),
    )
    trainer = MaskedGeneTrainer(model, units, config, device=device, metadata=metadata)
    if resume and checkpoint.is_file():
        _check_digest_recorded(checkpoint, trainer.metadata)
        trainer.restore(checkpoint)
    history = trainer.fit(progress=progress, checkpoint_path=checkpoint, checkpoint_every=checkpoint_every)
    return PretrainResult(trainer.model, graph, held_out, train_mask, history, trainer)
