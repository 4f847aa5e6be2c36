"""Self-supervised training of :class:`SpotEnhancer` on the observed spots, and prediction.

Everything here sees the observed spots only. A training *task* hides a subset of
them (a mask from :mod:`._masks`), interpolates the visible spots' low-rank scores
at the hidden ones (the baseline) and asks the model to reconstruct the hidden
spots' scores. Each ensemble member sets a fifth of the observed spots aside as
validation targets: they are never a target of its training tasks nor of the
calibration of its interpolation (the shrinkage), and the epoch
with the lowest validation loss is kept if that loss is significantly below the
baseline's (epoch 0 is the baseline itself, since the model's output layer starts
at zero); training stops after ``PATIENCE`` epochs without a lower loss. Query positions enter only
:meth:`EnhancerTrainer.predict`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from stgraph._validation import check_bool, check_dropout, check_int, check_real
from stgraph.graph import radius_graph

from ._embedding import LowRankEmbedding
from ._interpolation import blend_interpolate, fit_shrinkage
from ._lattice import GridType, lattice_positions, lattice_spacing
from ._masks import MASK_KINDS, draw_mask
from ._model import SpotEnhancer

VALIDATION_FRACTION = 0.2
# Work per epoch scales with the slide: up to `n_tasks` tasks but about this many
# nodes per epoch, and at most 4 tasks (about this many nodes) per optimiser step.
NODES_PER_EPOCH = 4000
NODES_PER_STEP = 4000
PATIENCE = 2  # epochs without a better validation loss before a member stops


def significant_improvement(gain: np.ndarray, z: float = 2.0) -> bool:
    """Whether paired per-target loss reductions ``gain`` have a mean above ``z``
    standard errors (False with fewer than two targets)."""
    if len(gain) < 2:
        return False
    return bool(gain.mean() > z * gain.std(ddof=1) / np.sqrt(len(gain)))


def _check_masks(masks) -> tuple[str, ...]:
    """``masks`` as a tuple of mask kinds (one kind may be given as a string).

    Raises
    ------
    ValueError
        If ``masks`` is empty or holds a kind not in :data:`~stgraph.spots._masks.MASK_KINDS`.
    """
    if isinstance(masks, str):  # a tuple of it would be its letters
        masks = (masks,)
    masks = tuple(masks)
    if not masks or any(kind not in MASK_KINDS for kind in masks):
        raise ValueError(f"`masks` must be a non-empty selection of {MASK_KINDS}, got {masks}.")
    return masks


@dataclass
class EnhancerParams:
    """Hyper-parameters of :class:`EnhancerTrainer` (those :func:`stgraph.tl.enhance`
    takes are documented there too).

    Attributes
    ----------
    rank
        Number of low-rank scores predicted, at least 1; capped at the embedding's width.
    n_components
        Width of the expression embedding the model reads, at least 1; capped at the
        number of spots and of genes.
    radius
        Radius of each task's spot graph, > 0, in units of the spacing of its
        visible spots (that of the observed spots at prediction; twice it in a
        sub-lattice task).
    hidden_channels, num_layers, heads
        Width of the node states, attention blocks and heads per block of
        :class:`SpotEnhancer`, each at least 1; ``hidden_channels`` divisible by ``heads``.
    lambda_init
        Initial distance penalty λ per spacing of the visible spots, > 0.
    dropout
        Attention dropout, in ``[0, 1)``.
    epochs
        Most passes over a member's training tasks, at least 0 (0: the calibrated
        interpolation alone); a member stops after 2 epochs without a lower
        validation loss.
    lr, weight_decay
        AdamW learning rate (> 0) and weight decay (>= 0).
    n_ensemble
        Number of independently seeded members averaged, at least 1.
    masks
        Mask kinds cycled through, from ``("random", "block", "sublattice")``; one
        kind may be given as a string (stored as a tuple).
    n_tasks
        Masks drawn to calibrate each member's shrinkage, at least 1; also caps the
        masks drawn for its training tasks (and as many for its validation tasks):
        about 4000 nodes' worth, at least 2 (a mask hiding no target is dropped).

    Raises
    ------
    TypeError, ValueError
        On construction, naming the setting: a count that is not an integer or below
        its minimum, a number not finite or out of its range, ``hidden_channels`` not
        divisible by ``heads``, or ``masks`` empty or holding an unknown kind.
    """

    rank: int = 10
    n_components: int = 32
    radius: float = 2.0
    hidden_channels: int = 32
    num_layers: int = 2
    heads: int = 4
    lambda_init: float = 1.0
    dropout: float = 0.1
    epochs: int = 10
    lr: float = 2e-3
    weight_decay: float = 1e-2
    n_ensemble: int = 2
    masks: tuple[str, ...] = ("random", "block")
    n_tasks: int = 16

    def __post_init__(self) -> None:
        """Check every setting's range; the message names the setting."""
        self.masks = _check_masks(self.masks)
        for name, low in (("rank", 1), ("n_components", 1), ("hidden_channels", 1), ("num_layers", 1),
                          ("heads", 1), ("epochs", 0), ("n_ensemble", 1), ("n_tasks", 1)):
            check_int(name, getattr(self, name), minimum=low)
        if self.hidden_channels % self.heads:
            raise ValueError(f"`hidden_channels` ({self.hidden_channels}) must be divisible by `heads` ({self.heads}).")
        for name, allow_zero in (("radius", False), ("lambda_init", False), ("lr", False), ("weight_decay", True)):
            check_real(name, getattr(self, name), allow_zero=allow_zero)
        self.dropout = check_dropout(self.dropout)


@dataclass
class _Batch:
    """Masked-reconstruction tasks collated into one disjoint graph, on the device."""

    node: torch.Tensor  # row of the embedding table behind each node
    is_query: torch.Tensor  # nodes without input (hidden or new spots)
    is_target: torch.Tensor  # nodes whose reconstruction is scored
    baseline: torch.Tensor
    edge_index: torch.Tensor
    edge_dist: torch.Tensor


@dataclass
class EnhancerTrainer:
    """Trains an ensemble of :class:`SpotEnhancer` on observed spots and predicts new ones.

    Parameters
    ----------
    rc
        ``(n, 2)`` array coordinates ``(row, col)`` of the observed spots.
    values
        ``(n, n_genes)`` log1p(CP10k) of the observed spots.
    grid
        Lattice type, ``"hexagonal"`` or ``"square"``.
    params
        Hyper-parameters.
    seed
        Seed of masks, validation split, initialisation and embedding.
    device
        Torch device the models train and predict on (e.g. ``"cpu"``, ``"cuda"``).

    Attributes
    ----------
    masks
        Every mask drawn, as ``(hidden, targets)`` boolean pairs over the observed
        spots, per member its shrinkage-calibration, training and validation tasks
        in that order; the targets of all members are the union of ``targets`` (a
        subset of the observed spots by construction).
    shrinkage
        Per member, the per-component slope applied to the interpolated scores.
    best_epochs
        Epoch kept per member (0: the baseline).
    loss_history
        Validation loss per member after each epoch (entry 0: the baseline).
    """

    rc: np.ndarray
    values: np.ndarray
    grid: GridType
    params: EnhancerParams = field(default_factory=EnhancerParams)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        p = self.params
        self.pos = lattice_positions(self.rc, self.grid)
        self.spacing = lattice_spacing(self.pos)
        self.embedding = LowRankEmbedding.fit(self.values, p.n_components, self.seed)
        self.scores = self.embedding.scores(self.values)
        self.rank = min(p.rank, self.embedding.n_components)
        self.loss_metric = torch.as_tensor(self._loss_metric(), device=self.device)
        self.rng = np.random.default_rng(self.seed)
        self.masks: list[tuple[np.ndarray, np.ndarray]] = []
        self.shrinkage: list[np.ndarray] = []
        self.models: list[SpotEnhancer] = []
        self.best_epochs: list[int] = []
        self.loss_history: list[list[float]] = []

    # ---------------------------------------------------------------- tasks
    def _draw(self, i: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kinds = self.params.masks
        hidden = draw_mask(kinds[i % len(kinds)], self.rc, self.pos, self.grid, self.spacing, self.rng)
        targets = hidden & allowed
        self.masks.append((hidden, targets))
        return hidden, targets

    def _fit_shrinkage(self, allowed: np.ndarray) -> np.ndarray:
        """Calibrate the interpolation on masked observed spots, the ``allowed`` ones as targets."""
        interpolated, truth = [], []
        for i in range(self.params.n_tasks):
            hidden, targets = self._draw(i, allowed)
            interpolated.append(self._interpolate(~hidden, self.pos[targets]))
            truth.append(self.scores[targets, : self.rank])
        return fit_shrinkage(np.vstack(interpolated), np.vstack(truth))

    def _interpolate(self, visible: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Interpolated rank-r scores of the ``visible`` observed spots at ``query`` positions."""
        pos = self.pos[visible]
        return blend_interpolate(pos, self.scores[visible, : self.rank], query, lattice_spacing(pos))

    def _batch(self, tasks: list[tuple[np.ndarray, np.ndarray]], pos: np.ndarray, shrinkage: np.ndarray) -> _Batch:
        """Collate ``(visible, targets)`` tasks over the nodes ``pos`` (observed spots
        first) into one graph whose edges all start at visible nodes; the baseline of
        the hidden nodes is the interpolation scaled by ``shrinkage``.

        Distances are measured in units of the visible spots' spacing, so that a
        sub-lattice task (visible spacing 2) looks like ×2 super-resolution of the
        full lattice (visible spacing 1) to the model.
        """
        n, n_obs = len(pos), len(self.pos)
        parts = {key: [] for key in ("node", "is_query", "is_target", "baseline", "edge_index", "edge_dist")}
        for i, (visible, targets) in enumerate(tasks):
            baseline = np.zeros((n, self.rank), dtype=np.float32)
            baseline[~visible] = shrinkage * self._interpolate(visible[:n_obs], pos[~visible])
            unit = lattice_spacing(pos[visible])
            edge_index, dist = radius_graph(torch.as_tensor(pos, dtype=torch.float64), self.params.radius * unit,
                                            return_distance=True)
            keep = torch.as_tensor(visible)[edge_index[0]]
            parts["node"].append(np.arange(n))
            parts["is_query"].append(~visible)
            parts["is_target"].append(targets)
            parts["baseline"].append(baseline)
            parts["edge_index"].append(edge_index[:, keep].numpy() + i * n)
            parts["edge_dist"].append((dist[keep].numpy() / unit).astype(np.float32))
        cat = {key: np.concatenate(value, axis=1 if key == "edge_index" else 0) for key, value in parts.items()}
        return _Batch(**{key: torch.as_tensor(value, device=self.device) for key, value in cat.items()})

    def _new_model(self) -> SpotEnhancer:
        p = self.params
        return SpotEnhancer(self.embedding.n_components, self.rank, p.hidden_channels, p.num_layers,
                            p.heads, p.lambda_init, p.dropout).to(self.device)

    def _forward(self, model: SpotEnhancer, table: torch.Tensor, batch: _Batch) -> torch.Tensor:
        return model(table[batch.node], batch.baseline, batch.is_query, batch.edge_index, batch.edge_dist)

    def _target_losses(self, model: SpotEnhancer, table: torch.Tensor, batch: _Batch) -> torch.Tensor:
        """Loss ``[n_targets]`` of each target node (see :meth:`_loss_metric`)."""
        err = (self._forward(model, table, batch) - table[batch.node, : self.rank])[batch.is_target]
        return ((err @ self.loss_metric) * err).sum(dim=1)

    def _loss_metric(self) -> np.ndarray:
        """``(rank, rank)`` metric on standardised scores: the mean squared error of
        the decoded genes, each gene divided by its variance over the observed spots.

        Per-gene correlation, not raw squared error, is what matters for each gene,
        so every gene expressed in at least 10 % of the observed spots counts equally
        (rarer ones are mostly sampling noise); normalised to trace 1.
        """
        detected = (self.values > 0).mean(axis=0) >= 0.1
        if not detected.any():
            detected = self.values.any(axis=0)
        var = self.values[:, detected].var(axis=0)
        loadings = self.embedding.components[detected, : self.rank] * self.embedding.scale[: self.rank]
        metric = loadings.T @ (loadings / np.maximum(var, 1e-8)[:, None])
        return (metric / np.trace(metric)).astype(np.float32)

    # ---------------------------------------------------------------- training
    def fit(self, progress: bool = True) -> "EnhancerTrainer":
        """Train ``n_ensemble`` members for up to ``epochs`` passes over their tasks each.

        The caller's torch random state is left as it was. Members are appended to
        those of an earlier call.

        Parameters
        ----------
        progress
            Show a progress bar (a bool).

        Returns
        -------
        The trainer itself.

        Raises
        ------
        TypeError
            If ``progress`` is not a bool.
        """
        progress = check_bool("progress", progress)
        p = self.params
        n = len(self.pos)
        table = torch.as_tensor(self.scores, device=self.device)
        n_train = int(np.clip(np.ceil(NODES_PER_EPOCH / n), 2, max(p.n_tasks, 2)))
        step = int(np.clip(round(NODES_PER_STEP / n), 1, 4))
        bar = tqdm(total=p.n_ensemble * p.epochs, desc="enhance: training", disable=not progress)
        with torch.random.fork_rng():  # seeding per member must not reset the caller's torch RNG
            for member in range(p.n_ensemble):
                torch.manual_seed(self.seed * 1000 + member)
                validation = np.zeros(n, dtype=bool)
                validation[self.rng.permutation(n)[: max(1, int(VALIDATION_FRACTION * n))]] = True
                shrinkage = self._fit_shrinkage(~validation)
                train = [(~h, t) for h, t in (self._draw(i, ~validation) for i in range(n_train)) if t.any()]
                val = [(~h, t) for h, t in (self._draw(i, validation) for i in range(n_train)) if t.any()]
                batches = [self._batch(train[i: i + step], self.pos, shrinkage) for i in range(0, len(train), step)]
                val_batch = self._batch(val, self.pos, shrinkage) if val else None
                model, kept, history = self._train_member(table, batches, val_batch, bar)
                self.shrinkage.append(shrinkage)
                self.models.append(model)
                self.best_epochs.append(kept)
                self.loss_history.append(history)
        bar.close()
        return self

    def _train_member(self, table, batches: list[_Batch], val_batch: _Batch | None, bar):
        """Train one model; returns it at the kept epoch, that epoch and the validation losses.

        An epoch is kept only if its validation loss is the lowest so far *and*
        significantly below the baseline's (epoch 0) on the same validation targets
        (:func:`significant_improvement`): with few, noisy validation spots the
        lowest of several losses is often low by chance.
        """
        p = self.params
        model = self._new_model()
        optimiser = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        baseline = self._validate(model, table, val_batch)
        history = [float(baseline.mean()) if len(baseline) else 0.0]
        kept, state = 0, copy.deepcopy(model.state_dict())
        lowest = (history[0], 0)
        for epoch in range(1, p.epochs + 1):
            model.train()
            for b in self.rng.permutation(len(batches)):
                loss = self._target_losses(model, table, batches[b]).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            losses = self._validate(model, table, val_batch)
            history.append(float(losses.mean()) if len(losses) else 0.0)
            bar.update()
            if history[-1] < history[kept] and significant_improvement(baseline - losses):
                kept, state = epoch, copy.deepcopy(model.state_dict())
            if history[-1] < lowest[0]:
                lowest = (history[-1], epoch)
            elif epoch - lowest[1] >= PATIENCE:
                bar.update(p.epochs - epoch)
                break
        model.load_state_dict(state)
        model.eval()
        return model, kept, history

    @torch.no_grad()
    def _validate(self, model: SpotEnhancer, table: torch.Tensor, batch: _Batch | None) -> np.ndarray:
        """Per-target validation losses (empty without validation targets)."""
        if batch is None:
            return np.zeros(0)
        model.eval()
        return self._target_losses(model, table, batch).cpu().numpy().astype(np.float64)

    # ---------------------------------------------------------------- prediction
    @torch.no_grad()
    def predict(self, rc_query: np.ndarray) -> np.ndarray:
        """log1p(CP10k) ``(m, n_genes)`` at query array coordinates (ensemble mean).

        Parameters
        ----------
        rc_query
            ``(m, 2)`` array coordinates ``(row, col)`` of the positions to predict
            (multiples of ½ for super-resolution), placed as the lattice ``grid`` places them.

        Returns
        -------
        ``(m, n_genes)`` rank-``rank`` reconstructions, not clipped (they can be
        slightly negative; :func:`stgraph.tl.enhance` clips them at 0).

        Raises
        ------
        RuntimeError
            Before :meth:`fit`.
        """
        if not self.models:
            raise RuntimeError("EnhancerTrainer.predict needs a fitted ensemble: call fit() first.")
        n_obs = len(self.pos)
        pos = np.vstack([self.pos, lattice_positions(rc_query, self.grid)])
        observed = np.arange(len(pos)) < n_obs
        # Members differ in their shrinkage only by a factor on the same interpolation.
        batch = self._batch([(observed, ~observed)], pos, np.ones(self.rank, dtype=np.float32))
        table = torch.zeros((len(pos), self.embedding.n_components), device=self.device)
        table[:n_obs] = torch.as_tensor(self.scores, device=self.device)
        scores = torch.stack([
            self._forward(model, table, replace(batch, baseline=batch.baseline * torch.as_tensor(shrinkage, device=self.device)))
            for model, shrinkage in zip(self.models, self.shrinkage)
        ]).mean(0)
        return self.embedding.expression(scores[n_obs:].cpu().numpy())
