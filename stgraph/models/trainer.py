"""Training loop of masked gene modelling, with exact resume."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from typing import Any, Iterator, Sequence

import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

from ..data.batching import batch_for_step, collate_units
from .._validation import check_int
from .checkpoint import read_checkpoint, save_checkpoint
from .masking import mask_tokens, masked_gene_loss
from .mgm import MaskedGeneModel


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of masked gene modelling.

    Parameters
    ----------
    steps
        Total number of optimiser steps.
    batch_size
        Units (cells or tiles) per mini-batch.
    lr
        Peak learning rate of AdamW.
    weight_decay
        AdamW weight decay.
    warmup_steps
        Steps of linear warm-up; the rate then follows a cosine down to 0 at ``steps``.
    grad_clip
        Maximum global gradient norm; None disables clipping.
    mask_rate
        Fraction of tokens selected as targets.
    seed
        Seed of the batch order, the masks and dropout.
    """

    steps: int
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    mask_rate: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.warmup_steps < 0:
            raise ValueError("steps and warmup_steps must be >= 0 and batch_size >= 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")
        if not 0 < self.mask_rate <= 1:
            raise ValueError(f"mask_rate must be in (0, 1], got {self.mask_rate}")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))


def resolve_device(device: str | torch.device) -> torch.device:
    """``'auto'`` → CUDA when available, else CPU; other values are checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' asked for, but CUDA is not available")
    return device


class MaskedGeneTrainer:
    """Trains a :class:`MaskedGeneModel` on mini-batches of transcript units.

    Every source of randomness is owned by the trainer: the batch of step ``s`` is
    a function of ``(s, seed)`` (:func:`~stgraph.data.batching.batch_for_step`), the
    masks come from the trainer's generator and dropout from its own copy of the
    global RNG state (the caller's global RNG is left untouched). Saving all of it
    with the weights and the optimiser makes a resumed run follow the uninterrupted
    one exactly (bit-identical on the CPU) when it runs on the same kind of device.

    Parameters
    ----------
    model
        The model to train (moved to ``device``).
    units
        Units from :func:`~stgraph.data.batching.tile_units` or
        :func:`~stgraph.data.batching.cell_units`, genes in the model's vocabulary.
    config
        Training hyper-parameters.
    device
        ``'cpu'``, ``'cuda'`` or ``'auto'``.
    metadata
        Plain values describing the training data (for instance the held-out
        cells); saved with the state, and a resumed run must have the same.
    """

    def __init__(
        self,
        model: MaskedGeneModel,
        units: Sequence[Data],
        config: TrainingConfig,
        *,
        device: str | torch.device = "cpu",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not units:
            raise ValueError("no training units: the training set is empty")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.units = list(units)
        self.config = config
        self.metadata = dict(metadata or {})
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.step = 0
        self.history: list[float] = []
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self._dropout_state = self._seeded_rng_state(config.seed)
        # True while fit() runs on the trainer's RNG: the live state is then the global one.
        self._rng_in_use = False
        self._random_pool = torch.nonzero(~model.is_control_gene).flatten().to(self.device)

    def _seeded_rng_state(self, seed: int) -> dict[str, torch.Tensor]:
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(seed)
            return self._global_rng_state()

    def _cuda_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def _global_rng_state(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Run with the trainer's dropout RNG state in place of the caller's."""
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.set_rng_state(self._dropout_state["cpu"])
            if "cuda" in self._dropout_state:
                torch.cuda.set_rng_state(self._dropout_state["cuda"], self.device)
            self._rng_in_use = True
            try:
                yield
            finally:
                self._dropout_state = self._global_rng_state()
                self._rng_in_use = False

    def _live_dropout_state(self) -> dict[str, torch.Tensor]:
        """The dropout RNG state as of now, also in the middle of :meth:`fit`."""
        return self._global_rng_state() if self._rng_in_use else dict(self._dropout_state)

    def _train_step(self) -> float:
        config = self.config
        units = batch_for_step(self.units, self.step, config.batch_size, config.seed)
        batch = collate_units(units).to(self.device)
        gene = batch.gene
        selectable = batch.core & ~self.model.is_control_gene[gene]
        masked = mask_tokens(
            gene,
            mask_token=self.model.encoder.mask_token,
            rate=config.mask_rate,
            selectable=selectable,
            random_pool=self._random_pool,
            generator=self.generator,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr_at(self.step)
        logits = self.model(masked.input, batch.pos, batch.edge_index, batch.edge_dist, batch.origin)
        loss = masked_gene_loss(logits, gene, masked.selected)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    def fit(
        self,
        steps: int | None = None,
        *,
        progress: bool = True,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
    ) -> list[float]:
        """Train up to step ``steps`` (default ``config.steps``).

        Parameters
        ----------
        steps
            Global step to stop at; no more than ``config.steps``.
        progress
            Show a tqdm progress bar.
        checkpoint_path
            Where to save the model and trainer state, every ``checkpoint_every``
            steps and at the end.
        checkpoint_every
            Steps between checkpoints; only at the end when None.

        Returns
        -------
        The loss of every step so far.
        """
        stop = self.config.steps if steps is None else steps
        if stop > self.config.steps:
            raise ValueError(f"cannot train to step {stop}: the schedule ends at {self.config.steps}")
        if checkpoint_every is not None:
            check_int("checkpoint_every", checkpoint_every)
        self.model.train()
        bar = tqdm(total=stop, initial=min(self.step, stop), disable=not progress, desc="MGM pretraining")
        with self._own_rng(), bar:
            while self.step < stop:
                loss = self._train_step()
                self.history.append(loss)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                if checkpoint_path is not None and checkpoint_every and self.step % checkpoint_every == 0:
                    self.save(checkpoint_path)
        self.model.eval()
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        return list(self.history)

    def state_dict(self) -> dict[str, Any]:
        """Configuration, optimiser, step, loss history and RNG states.

        The RNG states are the live ones, also when called during :meth:`fit` (as
        its periodic checkpoints do), so that resuming from any checkpoint follows
        the uninterrupted run exactly.
        """
        return dict(
            config=dataclasses.asdict(self.config),
            metadata=dict(self.metadata),
            optimizer=self.optimizer.state_dict(),
            step=self.step,
            device_type=self.device.type,
            history=list(self.history),
            generator=self.generator.get_state(),
            dropout_rng=self._live_dropout_state(),
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; its configuration must equal this trainer's."""
        saved = TrainingConfig(**state["config"])
        if saved != self.config:
            differ = [
                f"{f.name}: saved {getattr(saved, f.name)!r}, now {getattr(self.config, f.name)!r}"
                for f in dataclasses.fields(TrainingConfig)
                if getattr(saved, f.name) != getattr(self.config, f.name)
            ]
            raise ValueError("cannot resume with a different training configuration: " + "; ".join(differ))
        if state["metadata"] != self.metadata:
            raise ValueError(
                f"cannot resume on different training data: saved {state['metadata']}, now {self.metadata}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        if state["device_type"] == self.device.type:
            self.generator.set_state(state["generator"])
            self._dropout_state = dict(state["dropout_rng"])
        else:
            # RNG streams are device-specific: continue on fresh ones derived from the step.
            self.generator.manual_seed(self.config.seed + self.step)
            self._dropout_state = self._seeded_rng_state(self.config.seed + self.step)

    def save(self, path: str | os.PathLike) -> None:
        """Save the model and this trainer's state to ``path``."""
        save_checkpoint(path, self.model, self.state_dict())

    def restore(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save`.

        The checkpoint's model configuration, training configuration and metadata
        must equal this trainer's; its weights and training state replace the current ones.
        """
        payload = read_checkpoint(path)
        if payload["training"] is None:
            raise ValueError(f"{path} holds a model without training state; cannot resume")
        if payload["model_config"] != self.model.config:
            raise ValueError(f"{path} holds a model of another configuration; cannot resume")
        self.model.load_state_dict(payload["model_state"])
        self.load_state_dict(payload["training"])
