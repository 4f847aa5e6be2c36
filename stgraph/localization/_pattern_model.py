"""The pattern head: Bento's five localization patterns of each (cell, gene)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

from stgraph._seeding import torch_rng_restored
from stgraph._torch_files import read_torch_file
from stgraph.models.checkpoint import CHECKPOINT_FORMAT as MGM_CHECKPOINT_FORMAT
from stgraph.datasets import LOCALIZATION_PATTERNS
from stgraph.graph import radius_graph

from stgraph.nn import SpatialTransformerConv, TranscriptEncoderLayer

from ._data import CellGeneGroups, CellTranscripts
from ._features import TOKEN_FEATURES, reference_features, token_features

#: Bento's five patterns, in Bento's (alphabetical) order.
PATTERNS = LOCALIZATION_PATTERNS
#: What :meth:`PatternModel.load` reads, for its messages.
_CHECKPOINT = "stgraph pattern model checkpoint"


@dataclass
class PatternBatch:
    """Model input for a set of cells: tokens grouped by (cell, gene).

    Every index array is sorted by cell, so a range of cells is a contiguous slice.

    Attributes
    ----------
    x
        ``(N, F)`` token features (:data:`TOKEN_FEATURES`).
    density
        ``(N, 1)`` log ratio of same-gene neighbours within the context radius to
        the number expected if the gene were uniform.
    group
        ``(N,)`` group of each token.
    edge_index, edge_dist
        Same-gene neighbour graph within the context radius (in units of the
        cell's equivalent radius), sorted by target.
    ref_x, ref_cell
        Features and cell of the reference points (a uniform grid in each cell).
    group_cell
        ``(G,)`` cell of each group.
    group_x
        ``(G, 1)`` ``log1p(n_transcripts) / 4``.
    n_cells
        Number of cells covered.
    """

    x: Tensor
    density: Tensor
    group: Tensor
    edge_index: Tensor
    edge_dist: Tensor
    ref_x: Tensor
    ref_cell: Tensor
    group_cell: Tensor
    group_x: Tensor
    n_cells: int

    @property
    def n_groups(self) -> int:
        return self.group_cell.numel()

    def cell_slice(self, start: int, stop: int) -> "PatternBatch":
        """The sub-batch of cells ``start:stop``, indices renumbered from 0."""
        g0, g1 = torch.searchsorted(self.group_cell, torch.tensor([start, stop])).tolist()
        t0, t1 = torch.searchsorted(self.group, torch.tensor([g0, g1])).tolist()
        e0, e1 = torch.searchsorted(self.edge_index[1].contiguous(), torch.tensor([t0, t1])).tolist()
        r0, r1 = torch.searchsorted(self.ref_cell, torch.tensor([start, stop])).tolist()
        return PatternBatch(
            x=self.x[t0:t1],
            density=self.density[t0:t1],
            group=self.group[t0:t1] - g0,
            edge_index=self.edge_index[:, e0:e1] - t0,
            edge_dist=self.edge_dist[e0:e1],
            ref_x=self.ref_x[r0:r1],
            ref_cell=self.ref_cell[r0:r1] - start,
            group_cell=self.group_cell[g0:g1] - start,
            group_x=self.group_x[g0:g1],
            n_cells=stop - start,
        )


def pattern_batch(
    transcripts: CellTranscripts,
    groups: CellGeneGroups,
    context_radius: float,
    max_tokens_per_group: int | None = 96,
    seed: int = 0,
) -> PatternBatch:
    """Build the model input of every group in ``groups``.

    Groups with more than ``max_tokens_per_group`` transcripts are represented by a
    random subset of that size (drawn with ``seed``); their count feature keeps the
    full number.

    Parameters
    ----------
    transcripts
        Transcripts in cells, with their cell geometry.
    groups
        The (cell, gene) groups to score, e.g. ``transcripts.groups(min_transcripts)``.
    context_radius
        Radius of the same-gene neighbour graph in units of the cell's equivalent
        radius (:attr:`PatternModel.context_radius`).
    max_tokens_per_group
        Most tokens per group; None keeps every transcript.
    seed
        Seed of the subsampling.

    Returns
    -------
    :class:`PatternBatch` of the groups, in ``groups`` order.
    """
    geometry = transcripts.geometry
    token = _sample_tokens(groups.member, max_tokens_per_group, seed)
    group = groups.member[token]
    tokens_in_group = np.bincount(group, minlength=len(groups))
    cell = transcripts.cell[token]
    scale = geometry.equivalent_radius[cell]
    x = token_features(transcripts.transcript_geometry, transcripts.cell, geometry)[token]
    pos = (transcripts.xy[token] - geometry.centroid[cell]) / scale[:, None]
    edge_index, edge_dist = radius_graph(pos, context_radius, batch=group, return_distance=True)
    neighbours = np.bincount(edge_index[1].numpy(), minlength=len(token))
    # A uniform gene has (m - 1) * pi r^2 / pi neighbours within r (lengths in
    # units of the equivalent radius, so the cell area is pi).
    expected = (tokens_in_group[group] - 1) * context_radius**2
    density = np.log1p(neighbours) - np.log1p(expected)
    # Only cells with a group to score need their uniform reference: with a large panel
    # most cells have none, and each costs ~256 points.
    ref_x, ref_cell = reference_features(geometry, cells=np.unique(groups.cell))
    return PatternBatch(
        x=torch.from_numpy(x),
        density=torch.from_numpy(density.astype(np.float32)).unsqueeze(1),
        group=torch.from_numpy(group.astype(np.int64)),
        edge_index=edge_index,
        edge_dist=edge_dist.float(),
        ref_x=torch.from_numpy(ref_x),
        ref_cell=torch.from_numpy(ref_cell.astype(np.int64)),
        group_cell=torch.from_numpy(groups.cell.astype(np.int64)),
        group_x=torch.from_numpy((np.log1p(groups.n_transcripts) / 4).astype(np.float32)).unsqueeze(1),
        n_cells=len(geometry),
    )


def _sample_tokens(member: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Positions of the kept transcripts, sorted by group: all of each group's, or a
    random ``cap`` of them."""
    token = np.flatnonzero(member >= 0)
    if cap is None:
        return token[np.argsort(member[token], kind="stable")]
    order = np.lexsort((np.random.default_rng(seed).random(len(token)), member[token]))
    token, group = token[order], member[token[order]]
    first = np.searchsorted(group, group)
    kept = np.sort(token[np.arange(len(token)) - first < cap])
    return kept[np.argsort(member[kept], kind="stable")]


def _mlp(*sizes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class RadialBasis(nn.Module):
    r"""Gaussian bumps :math:`\exp(-(x - \mu_k)^2 / (2 \sigma^2))` of selected columns,
    appended to the input; with centres ``sigma`` apart they let the next layer
    pick out thin bands (near the membrane, around the nuclear envelope) at once.

    Parameters
    ----------
    columns
        Input columns to expand.
    low, high, sigma
        Centres ``low, low + sigma, ..., high`` (the same for every column).
    """

    def __init__(self, columns: tuple[int, ...], low: float = -0.6, high: float = 1.0, sigma: float = 0.05):
        super().__init__()
        self.columns = list(columns)
        self.sigma = sigma
        self.register_buffer("centres", torch.arange(low, high + sigma / 2, sigma))

    @property
    def out_features(self) -> int:
        return len(self.columns) * self.centres.numel()

    def forward(self, x: Tensor) -> Tensor:
        bumps = torch.exp(-0.5 * ((x[:, self.columns, None] - self.centres) / self.sigma) ** 2)
        return torch.cat([x, bumps.flatten(1)], 1)


class PatternModel(nn.Module):
    r"""Localization-pattern classifier over the transcripts of each (cell, gene).

    Every transcript is a token with geometric features relative to its cell
    (:data:`TOKEN_FEATURES`, the distances to the membrane and to the nuclear
    envelope also expanded on Gaussian bumps, :class:`RadialBasis`). A token MLP
    :math:`\psi` embeds them; the mean of
    :math:`\psi` over a uniform grid of the cell, :math:`u_c`, tells the model what
    an unlocalized gene looks like in that cell. Tokens are then

    .. math::
        h_i = \mathrm{MLP}([\psi(t_i) \,\Vert\, u_{c(i)} \,\Vert\, \delta_i])

    with :math:`\delta_i` the log ratio of observed to expected same-gene
    neighbours, refined by ``num_layers`` transcript-encoder blocks
    (:class:`~stgraph.nn.TranscriptEncoderLayer` around a
    :class:`~stgraph.nn.SpatialTransformerConv`) over the same-gene neighbour
    graph, and pooled per (cell, gene) by attention
    (:math:`a_i = \mathrm{softmax}_{i \in g}(w^\top h_i)`) and by mean. A head maps
    ``[attention pool, mean pool, u_c, log1p(n) / 4]`` to five logits, one per
    pattern of :data:`PATTERNS` (multilabel: sigmoid per pattern, called with a
    per-pattern threshold stored in :attr:`thresholds`).

    Parameters
    ----------
    hidden
        Width of every layer.
    heads
        Attention heads of the graph layers.
    num_layers
        Number of graph-attention blocks.
    context_radius
        Radius of the same-gene neighbour graph, in units of the cell's
        equivalent radius ``sqrt(area / pi)``.

    Raises
    ------
    ValueError
        If ``hidden`` is not divisible by ``heads`` or ``context_radius <= 0``.
    """

    def __init__(self, hidden: int = 48, heads: int = 2, num_layers: int = 1, context_radius: float = 0.3):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        if context_radius <= 0:
            raise ValueError(f"context_radius must be > 0, got {context_radius}")
        self.config = dict(hidden=hidden, heads=heads, num_layers=num_layers, context_radius=context_radius)
        expand = RadialBasis((TOKEN_FEATURES.index("membrane_distance"), TOKEN_FEATURES.index("nucleus_distance")))
        self.embed = nn.Sequential(expand, _mlp(len(TOKEN_FEATURES) + expand.out_features, hidden, hidden, hidden))
        self.mix = _mlp(2 * hidden + 1, hidden, hidden)
        self.blocks = nn.ModuleList(
            [
                TranscriptEncoderLayer(SpatialTransformerConv(hidden, hidden, heads), hidden, 2 * hidden)
                for _ in range(num_layers)
            ]
        )
        self.gate = nn.Linear(hidden, 1)
        self.head = _mlp(3 * hidden + 1, hidden, len(PATTERNS))
        self.register_buffer("thresholds", torch.full((len(PATTERNS),), 0.5))
        #: How the model was trained (simulation settings, seed, ...), saved with it.
        self.training_info: dict = {}

    @property
    def context_radius(self) -> float:
        return self.config["context_radius"]

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.thresholds.fill_(0.5)

    def forward(self, batch: PatternBatch) -> Tensor:
        """Logits ``(n_groups, 5)``, columns in the order of :data:`PATTERNS`.

        Parameters
        ----------
        batch
            :class:`PatternBatch` of :func:`pattern_batch`, built with this model's
            :attr:`context_radius`.
        """
        cell_context = scatter(self.embed(batch.ref_x), batch.ref_cell, 0, dim_size=batch.n_cells, reduce="mean")
        token_cell = batch.group_cell[batch.group]
        # index_select, not cell_context[token_cell]: the backward of indexing adds the
        # tokens' gradients in parallel in thread order, so two runs of the same seed
        # trained other weights; that of index_select (index_add_) sums in a fixed order.
        h = self.mix(torch.cat([self.embed(batch.x), cell_context.index_select(0, token_cell), batch.density], 1))
        for block in self.blocks:
            h = block(h, batch.edge_index, batch.edge_dist)
        weight = softmax(self.gate(h).squeeze(-1), batch.group, num_nodes=batch.n_groups)
        attended = scatter(h * weight.unsqueeze(-1), batch.group, 0, dim_size=batch.n_groups, reduce="sum")
        mean = scatter(h, batch.group, 0, dim_size=batch.n_groups, reduce="mean")
        return self.head(torch.cat([attended, mean, cell_context.index_select(0, batch.group_cell), batch.group_x], 1))

    @torch.no_grad()
    def predict_proba(self, batch: PatternBatch, max_tokens: int = 200_000) -> np.ndarray:
        """Sigmoid probabilities ``(n_groups, 5)``, by chunks of cells of at most
        ``max_tokens`` rows, tokens and reference points together (a single larger
        cell is its own chunk). The model's train/eval mode is left as it was.

        Parameters
        ----------
        batch
            :class:`PatternBatch` of :func:`pattern_batch`.
        max_tokens
            Most rows (tokens and reference points) per chunk; bounds the memory.

        Returns
        -------
        ``(n_groups, 5)`` float32 probabilities, columns in the order of :data:`PATTERNS`.
        """
        was_training = self.training
        self.eval()
        try:
            out = [torch.sigmoid(self(chunk)) for chunk in _cell_chunks(batch, max_tokens)]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros((0, len(PATTERNS)), dtype=np.float32)

    def save(self, path: str | Path) -> None:
        """Write the configuration, weights, thresholds and :attr:`training_info` to ``path``.

        Parameters
        ----------
        path
            File to write (with :func:`torch.save`; an existing file is replaced).
        """
        torch.save({"config": self.config, "state_dict": self.state_dict(), "training_info": self.training_info}, path)

    @classmethod
    def load(cls, path: str | Path) -> "PatternModel":
        """Read a model written by :meth:`save` (the caller's torch random numbers are
        left as they were).

        Parameters
        ----------
        path
            File written by :meth:`save`.

        Returns
        -------
        The model, in eval mode.

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path`` (a folder included).
        OSError
            If the file cannot be opened.
        ValueError
            If the file is not a pattern model written by :meth:`save`: ``torch.load``
            cannot read it (a file cut short included), it is a masked gene model checkpoint
            (:func:`stgraph.models.load_model` reads those), it lacks the
            configuration or weights, or its weights do not fit its configuration.
        """
        checkpoint = read_torch_file(path, _CHECKPOINT)
        if isinstance(checkpoint, dict) and checkpoint.get("format") == MGM_CHECKPOINT_FORMAT:
            raise ValueError(
                f"{path} is a masked gene model checkpoint (stgraph.models.load_model reads it), "
                f"not a {_CHECKPOINT} written by PatternModel.save"
            )
        if not isinstance(checkpoint, dict):
            raise ValueError(f"{path} is not a {_CHECKPOINT}: it holds a {type(checkpoint).__name__}, not a dict")
        missing = [key for key in ("config", "state_dict") if key not in checkpoint]
        if missing:
            raise ValueError(f"{path} is not a {_CHECKPOINT}: it lacks {missing}")
        try:
            with torch_rng_restored():
                model = cls(**checkpoint["config"])
            model.load_state_dict(checkpoint["state_dict"])
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{path} is not a {_CHECKPOINT}: its weights do not fit a PatternModel ({err})") from err
        model.training_info = checkpoint.get("training_info", {})
        return model.eval()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{self.__class__.__name__}({args})"


def _cell_chunks(batch: PatternBatch, max_tokens: int):
    """Consecutive sub-batches of whole cells with at most ``max_tokens`` rows.

    A cell's rows are its tokens and its reference points (about 256, embedded by
    the same MLP): with a large panel and few molecules per (cell, gene), counting
    tokens alone put every cell, and so millions of reference points, in one chunk.
    """
    if batch.n_groups == 0:
        return
    rows_per_cell = torch.bincount(batch.group_cell[batch.group], minlength=batch.n_cells) + torch.bincount(
        batch.ref_cell, minlength=batch.n_cells
    )
    ends = torch.cumsum(rows_per_cell, 0)
    start = 0
    while start < batch.n_cells:
        offset = ends[start - 1] if start else 0
        stop = int(torch.searchsorted(ends, offset + max_tokens, right=True))
        stop = max(stop, start + 1)
        yield batch.cell_slice(start, stop)
        start = stop
