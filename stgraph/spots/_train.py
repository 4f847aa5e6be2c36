"""Self-supervised training of :class:`SpotEnhancer` on the observed spots, and prediction.

Everything here sees the observed spots only. A training *task* hides a subset of
them (a mask from :mod:`._masks`), interpolates the visible spots' low-rank scores
at the hidden ones (the baseline) and asks the model to reconstruct the hidden
spots' scores. Each ensemble member sets a fifth of the observed spots aside as
validation targets: they are never a target of its training tasks, and the epoch
with the lowest validation loss is kept (epoch 0 is the baseline itself, since the
model's output layer starts at zero). Query positions enter only
:meth:`EnhancerTrainer.predict`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from stgraph.graph import radius_graph

from ._embedding import LowRankEmbedding
from ._interpolation import blend_interpolate, fit_shrinkage
from ._lattice import GridType, lattice_positions, lattice_spacing
from ._masks import draw_mask
from ._model import SpotEnhancer

VALIDATION_FRACTION = 0.2


@dataclass
class EnhancerParams:
    """Hyper-parameters of :class:`EnhancerTrainer` (documented in :func:`stgraph.tl.enhance`)."""

    rank: int = 10
    n_components: int = 32
    radius: float = 2.5
    hidden_channels: int = 32
    num_layers: int = 2
    heads: int = 4
    lambda_init: float = 1.0
    dropout: float = 0.1
    epochs: int = 30
    lr: float = 2e-3
    weight_decay: float = 1e-2
    n_ensemble: int = 3
    masks: tuple[str, ...] = ("random", "block")
    n_tasks: int = 16


@dataclass
class _Task:
    """One masked-reconstruction instance on the device."""

    is_query: torch.Tensor  # nodes without input (hidden or new)
    is_target: torch.Tensor  # nodes whose reconstruction is scored
    baseline: torch.Tensor
    edge_index: torch.Tensor
    edge_dist: torch.Tensor


@dataclass
class EnhancerTrainer:
    """Trains an ensemble of :class:`SpotEnhancer` on observed spots and predicts new ones.

    Args:
        rc: ``(n, 2)`` array coordinates ``(row, col)`` of the observed spots.
        values: ``(n, n_genes)`` log1p(CP10k) of the observed spots.
        grid: Lattice type.
        params: Hyper-parameters.
        seed: Seed of masks, validation split, initialisation and embedding.
        device: Torch device.

    Attributes:
        masks: Every mask drawn, as ``(hidden, targets)`` boolean pairs over the
            observed spots; the training targets of all members are the union of
            ``targets`` (a subset of the observed spots by construction).
        shrinkage: Per-component slope applied to the interpolated scores.
        best_epochs: Epoch kept per member (0: the baseline).
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
        # Loss weights: each component's share of expression variance, so the loss
        # is the squared error in gene space within the rank-r subspace.
        var = self.embedding.scale[: self.rank] ** 2
        self.loss_weight = torch.as_tensor(var / var.sum(), dtype=torch.float32, device=self.device)
        self.rng = np.random.default_rng(self.seed)
        self.masks: list[tuple[np.ndarray, np.ndarray]] = []
        self.shrinkage = self._fit_shrinkage()
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

    def _fit_shrinkage(self) -> np.ndarray:
        """Calibrate the interpolation on masked observed spots (all spots allowed as targets)."""
        interpolated, truth = [], []
        everyone = np.ones(len(self.pos), dtype=bool)
        for i in range(self.params.n_tasks):
            hidden, targets = self._draw(i, everyone)
            interpolated.append(blend_interpolate(self.pos[~hidden], self.scores[~hidden, : self.rank],
                                                  self.pos[targets], self.spacing))
            truth.append(self.scores[targets, : self.rank])
        return fit_shrinkage(np.vstack(interpolated), np.vstack(truth))

    def _graph(self, pos: np.ndarray, visible: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Radius graph over ``pos`` with only the edges whose source is visible."""
        edge_index, dist = radius_graph(torch.as_tensor(pos, dtype=torch.float64),
                                        self.params.radius * self.spacing, return_distance=True)
        keep = torch.as_tensor(visible)[edge_index[0]]
        return edge_index[:, keep].to(self.device), (dist[keep] / self.spacing).to(torch.float32).to(self.device)

    def _task(self, pos: np.ndarray, visible: np.ndarray, targets: np.ndarray) -> _Task:
        """``pos`` over all nodes; the first ``len(self.pos)`` are the observed spots."""
        observed_visible = visible[: len(self.pos)]
        baseline = np.zeros((len(pos), self.rank), dtype=np.float32)
        baseline[~visible] = self.shrinkage * blend_interpolate(
            self.pos[observed_visible], self.scores[observed_visible, : self.rank], pos[~visible], self.spacing)
        edge_index, edge_dist = self._graph(pos, visible)
        as_tensor = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        return _Task(as_tensor(~visible), as_tensor(targets), as_tensor(baseline), edge_index, edge_dist)

    def _new_model(self) -> SpotEnhancer:
        p = self.params
        return SpotEnhancer(self.embedding.n_components, self.rank, p.hidden_channels, p.num_layers,
                            p.heads, p.lambda_init, p.dropout).to(self.device)

    def _loss(self, model: SpotEnhancer, embedding: torch.Tensor, task: _Task) -> torch.Tensor:
        pred = model(embedding, task.baseline, task.is_query, task.edge_index, task.edge_dist)
        err = (pred - embedding[:, : self.rank])[task.is_target]
        return (err.pow(2) * self.loss_weight).sum(dim=1).mean()

    # ---------------------------------------------------------------- training
    def fit(self, progress: bool = True) -> "EnhancerTrainer":
        """Train ``n_ensemble`` members for up to ``epochs`` passes over their tasks each."""
        p = self.params
        n = len(self.pos)
        embedding = torch.as_tensor(self.scores, device=self.device)
        bar = tqdm(total=p.n_ensemble * p.epochs, desc="enhance: training", disable=not progress)
        for member in range(p.n_ensemble):
            torch.manual_seed(self.seed * 1000 + member)
            validation = np.zeros(n, dtype=bool)
            validation[self.rng.permutation(n)[: max(1, int(VALIDATION_FRACTION * n))]] = True
            train_tasks, val_tasks = [], []
            for i in range(p.n_tasks):
                hidden, targets = self._draw(i, ~validation)
                if targets.any():
                    train_tasks.append(self._task(self.pos, ~hidden, targets))
            for i in range(max(1, p.n_tasks // 4)):
                hidden, targets = self._draw(i, validation)
                if targets.any():
                    val_tasks.append(self._task(self.pos, ~hidden, targets))
            model = self._new_model()
            optimiser = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
            best = (self._validate(model, embedding, val_tasks), 0, copy.deepcopy(model.state_dict()))
            history = [best[0]]
            for epoch in range(1, p.epochs + 1):
                model.train()
                for t in self.rng.permutation(len(train_tasks)):
                    loss = self._loss(model, embedding, train_tasks[t])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                history.append(self._validate(model, embedding, val_tasks))
                if history[-1] < best[0]:
                    best = (history[-1], epoch, copy.deepcopy(model.state_dict()))
                bar.update()
            model.load_state_dict(best[2])
            model.eval()
            self.models.append(model)
            self.best_epochs.append(best[1])
            self.loss_history.append(history)
        bar.close()
        return self

    @torch.no_grad()
    def _validate(self, model: SpotEnhancer, embedding: torch.Tensor, tasks: list[_Task]) -> float:
        if not tasks:
            return 0.0
        model.eval()
        return float(np.mean([self._loss(model, embedding, task).item() for task in tasks]))

    # ---------------------------------------------------------------- prediction
    @torch.no_grad()
    def predict(self, rc_query: np.ndarray) -> np.ndarray:
        """log1p(CP10k) ``(m, n_genes)`` at query array coordinates (ensemble mean)."""
        pos = np.vstack([self.pos, lattice_positions(rc_query, self.grid)])
        observed = np.arange(len(pos)) < len(self.pos)
        task = self._task(pos, observed, ~observed)
        embedding = torch.zeros((len(pos), self.embedding.n_components), device=self.device)
        embedding[observed] = torch.as_tensor(self.scores, device=self.device)
        if self.models:
            preds = [m(embedding, task.baseline, task.is_query, task.edge_index, task.edge_dist) for m in self.models]
            scores = torch.stack(preds).mean(0)
        else:
            scores = task.baseline
        return self.embedding.expression(scores[len(self.pos):].cpu().numpy())
