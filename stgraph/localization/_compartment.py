"""Compartment of each transcript: the probability that it lies in the nucleus.

Two feature sets:

* ``"outlines"``: the nucleus outline of the transcript's cell is an input (signed
  distance to the envelope, inside flag, distance to the nucleus centroid);
* ``"withheld"``: no nucleus outline is used, only what is known without one:
  where the molecule sits in its cell, which gene it is, and its neighbourhood in
  the transcript graph (the genes of its neighbours and the local density).

Either way the model is a small MLP fitted on the transcripts of cells that *do*
have a nucleus (their label: inside the nucleus polygon) and applied to any cell;
in ``"withheld"`` mode this predicts the compartment where outlines are missing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch_geometric.utils import scatter

from stgraph._seeding import torch_rng_restored, torch_seeded
from stgraph.graph import radius_graph

from ._data import CellTranscripts

MODES = ("outlines", "withheld")

#: Columns of the ``"withheld"`` feature set.
CONTEXT_FEATURES = (
    "membrane_distance",
    "centroid_distance",
    "gene_prior",
    "neighbour_prior",
    "neighbour_prior_2hop",
    "local_density",
    "prior_centre_distance",
)
#: Columns added in ``"outlines"`` mode.
OUTLINE_FEATURES = ("nucleus_distance", "in_nucleus", "nucleus_centroid_distance")

#: Neighbourhood of a transcript: its ``_NEIGHBOURS`` nearest molecules of the same
#: cell within the radius that holds ``2 * _NEIGHBOURS`` molecules on average.
_NEIGHBOURS = 8
#: Pseudo-count pulling a gene's nuclear fraction towards the overall one.
_PRIOR_STRENGTH = 10.0


def gene_nuclear_prior(
    gene: np.ndarray, in_nucleus: np.ndarray, n_genes: int, strength: float = _PRIOR_STRENGTH
) -> np.ndarray:
    """Smoothed nuclear fraction of every gene, ``(k_g + s f) / (n_g + s)``.

    ``k_g`` of the ``n_g`` molecules of gene ``g`` are nuclear and ``f`` is the
    nuclear fraction of all molecules; genes never seen get ``f``.
    """
    overall = float(in_nucleus.mean()) if len(in_nucleus) else 0.5
    nuclear = np.bincount(gene, weights=in_nucleus.astype(float), minlength=n_genes)
    total = np.bincount(gene, minlength=n_genes)
    return (nuclear + strength * overall) / (total + strength)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def compartment_features(transcripts: CellTranscripts, prior: np.ndarray) -> np.ndarray:
    """``(N, F)`` float32 features of every transcript: :data:`CONTEXT_FEATURES`
    then :data:`OUTLINE_FEATURES` (zeros in cells without nucleus).

    Parameters
    ----------
    transcripts
        Transcripts in cells.
    prior
        Nuclear fraction of every gene (:func:`gene_nuclear_prior` on training cells).
    """
    geometry = transcripts.geometry
    tg = transcripts.transcript_geometry
    cell = transcripts.cell
    scale = geometry.equivalent_radius[cell]
    pos = (transcripts.xy - geometry.centroid[cell]) / scale[:, None]
    gene_prior = _logit(prior[transcripts.gene]).astype(np.float32)

    area = geometry.area
    per_cell = np.bincount(cell, minlength=len(geometry))
    radius = np.sqrt(2 * _NEIGHBOURS / (np.pi * per_cell.sum() / area[per_cell > 0].sum()))
    edge_index, edge_dist = radius_graph(
        transcripts.xy, radius, batch=cell, max_num_neighbors=_NEIGHBOURS, return_distance=True
    )
    src, dst = edge_index
    n = len(pos)
    value = torch.from_numpy(gene_prior)
    hop1 = _neighbour_mean(value, src, dst, n)
    hop2 = _neighbour_mean(hop1, src, dst, n)
    # Density: k neighbours within the disc reaching the farthest of them, over the
    # cell's mean density.
    count = torch.bincount(dst, minlength=n).double()
    reach = scatter(edge_dist.double(), dst, 0, dim_size=n, reduce="max").clamp_min(radius / 4)
    cell_density = torch.from_numpy(per_cell[cell] / area[cell])
    density = torch.log1p(count) - torch.log(np.pi * reach**2) - torch.log(cell_density)
    centre = _prior_centre(pos, cell, hop2.numpy(), len(geometry))

    columns = [
        tg.cell_distance / scale,
        tg.cell_offset / scale,
        gene_prior,
        hop1.numpy(),
        hop2.numpy(),
        density.numpy(),
        np.linalg.norm(pos - centre[cell], axis=1),
        tg.nucleus_distance / scale,
        tg.in_nucleus,
        tg.nucleus_offset / scale,
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def _neighbour_mean(value: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``value`` over each node and its neighbours."""
    total = scatter(value[src], dst, 0, dim_size=n, reduce="sum") + value
    return total / (torch.bincount(dst, minlength=n) + 1).to(value.dtype)


def _prior_centre(pos: np.ndarray, cell: np.ndarray, context: np.ndarray, n_cells: int) -> np.ndarray:
    """Per cell, the centroid of the molecules weighted by how much their
    neighbourhood prior exceeds the cell's median: where the nucleus likely is."""
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(n_cells + 1))
    centre = np.zeros((n_cells, 2))
    for c in range(n_cells):
        members = order[bounds[c]:bounds[c + 1]]
        if len(members) == 0:
            continue
        weight = np.clip(context[members] - np.median(context[members]), 0, None)
        if weight.sum() > 0:
            centre[c] = (pos[members] * weight[:, None]).sum(0) / weight.sum()
    return centre


class CompartmentModel(nn.Module):
    r"""Probability that a transcript is nuclear, from per-transcript features.

    A two-layer MLP with standardised inputs,
    :math:`p = \sigma(\mathrm{MLP}((x - \mu) / \sigma_x))`, fitted by
    :meth:`fit` on labelled transcripts.

    Parameters
    ----------
    n_features
        Number of input features.
    hidden
        Width of the hidden layers.
    """

    def __init__(self, n_features: int, hidden: int = 32):
        super().__init__()
        self.n_features, self.hidden = n_features, hidden
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def reset_parameters(self) -> None:
        for module in self.net:
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        self.mean.zero_()
        self.std.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N,)``.

        Parameters
        ----------
        x
            ``(N, n_features)`` float32 features, unstandardised.
        """
        return self.net((x - self.mean) / self.std).squeeze(-1)

    def fit(
        self, x: np.ndarray, y: np.ndarray, *, steps: int = 200, batch_size: int = 2048, lr: float = 1e-2, seed: int = 0
    ) -> "CompartmentModel":
        """Fit by Adam on binary cross-entropy, ``steps`` minibatches drawn with ``seed``.

        The parameters are reset first (seeded), and the feature means and standard
        deviations are taken from ``x``: a refit starts afresh.

        Parameters
        ----------
        x
            ``(N, n_features)`` float32 features of the training transcripts.
        y
            ``(N,)`` labels, 1 (nuclear) or 0 (not); both must occur.
        steps
            Optimisation steps (minibatches), with a cosine learning-rate schedule.
        batch_size
            Rows per minibatch, drawn with replacement (at most ``N``).
        lr
            Initial Adam learning rate.
        seed
            Seed of the initialisation and of the minibatch draws.

        Returns
        -------
        The model itself, fitted and in eval mode.

        Raises
        ------
        ValueError
            If ``x`` is empty or ``y`` holds a single class.
        """
        if len(x) == 0 or y.min() == y.max():
            raise ValueError("compartment: training transcripts must include nuclear and non-nuclear ones")
        generator = torch.Generator().manual_seed(seed)
        with torch_seeded(seed):
            self.reset_parameters()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
        self.mean.copy_(xt.mean(0))
        self.std.copy_(xt.std(0).clamp_min(1e-6))
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        loss_fn = nn.BCEWithLogitsLoss()
        self.train()
        for _ in range(steps):
            idx = torch.randint(len(xt), (min(batch_size, len(xt)),), generator=generator)
            loss = loss_fn(self(xt[idx]), yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        return self.eval()

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Nuclear probability of every row of ``x``.

        Parameters
        ----------
        x
            ``(N, n_features)`` float32 features.

        Returns
        -------
        ``(N,)`` float32 probabilities.
        """
        return torch.sigmoid(self(torch.from_numpy(x))).numpy()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(n_features={self.n_features}, hidden={self.hidden})"


@dataclass
class CompartmentResult:
    """Nuclear probability of every transcript in a cell, and how it was obtained.

    Attributes
    ----------
    p_nuclear
        ``(N,)`` probabilities, aligned with the :class:`CellTranscripts`.
    mode
        ``(N,)`` feature set used for each transcript (``"outlines"`` or ``"withheld"``).
    training_cells
        Positions of the cells whose nuclei labelled the training transcripts.
    """

    p_nuclear: np.ndarray
    mode: np.ndarray
    training_cells: np.ndarray


def predict_compartment(
    transcripts: CellTranscripts,
    *,
    mode: str = "auto",
    training_cells: np.ndarray | None = None,
    seed: int = 0,
) -> CompartmentResult:
    """Nuclear probability of every transcript of ``transcripts``.

    Parameters
    ----------
    transcripts
        Transcripts in cells.
    mode
        ``"outlines"``: use nucleus outlines as features for cells that have one
        (cells without one fall back to ``"withheld"``); ``"withheld"``: never use
        outlines as features; ``"auto"``: same as ``"outlines"``.
    training_cells
        Positions of the cells (with a nucleus) whose transcripts train the model;
        default all cells with a nucleus.
    seed
        Seed of the model fit.

    Returns
    -------
    :class:`CompartmentResult`: the nuclear probability and the feature set of every
    transcript, and the training cells.

    Raises
    ------
    ValueError
        For an unknown ``mode``, a training cell without nucleus outline, no training
        cell, or training transcripts that are all nuclear or all not.
    """
    if mode not in (*MODES, "auto"):
        raise ValueError(f"mode must be one of {(*MODES, 'auto')}, got {mode!r}")
    geometry = transcripts.geometry
    has_nucleus = geometry.has_nucleus
    if training_cells is None:
        training_cells = np.flatnonzero(has_nucleus)
    training_cells = np.asarray(training_cells, dtype=np.int64)
    if not has_nucleus[training_cells].all():
        raise ValueError("compartment: every training cell must have a nucleus outline")
    if len(training_cells) == 0:
        raise ValueError("compartment: no cell has a nucleus outline to learn from")
    labels = transcripts.transcript_geometry.in_nucleus
    train = np.isin(transcripts.cell, training_cells)
    prior = gene_nuclear_prior(transcripts.gene[train], labels[train], len(transcripts.gene_names))

    use_outlines = has_nucleus[transcripts.cell] if mode != "withheld" else np.zeros(len(labels), bool)
    p_nuclear = np.zeros(len(labels))
    used = np.where(use_outlines, "outlines", "withheld")
    features = compartment_features(transcripts, prior)
    for current, rows in (("outlines", use_outlines), ("withheld", ~use_outlines)):
        if not rows.any():
            continue
        n_columns = len(CONTEXT_FEATURES) + (len(OUTLINE_FEATURES) if current == "outlines" else 0)
        x = np.ascontiguousarray(features[:, :n_columns])
        with torch_rng_restored():  # fit draws the initial weights again, from its seed
            model = CompartmentModel(x.shape[1])
        p_nuclear[rows] = model.fit(x[train], labels[train], seed=seed).predict_proba(x[rows])
    return CompartmentResult(p_nuclear=p_nuclear, mode=used, training_cells=training_cells)
