"""Training loop of masked gene modelling, with exact resume, on one or many processes."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

from ..data.batching import batch_indices, collate_units
from .._validation import check_bool, check_int, check_plain, check_real, check_seed
from . import parallel
from .checkpoint import check_writable, read_checkpoint, save_checkpoint
from .masking import MaskedTokens, mask_tokens, masked_gene_loss
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
        Steps of linear warm-up, at most ``steps``; the rate then follows a cosine down
        to 0 at ``steps``.
    grad_clip
        Maximum global gradient norm; None disables clipping.
    mask_rate
        Fraction of tokens selected as targets.
    seed
        Seed of the batch order, the masks and dropout.

    NumPy numbers (and 0-d tensors) are stored as Python numbers, so that a saved
    training state loads.

    Raises
    ------
    ValueError
        If a value lies outside its range (a number NaN or infinite included), or
        ``warmup_steps`` exceeds ``steps``.
    TypeError
        If a value is neither a plain Python value, a NumPy value nor a tensor, or
        is not of its field's kind: an integer for ``steps``, ``batch_size``,
        ``warmup_steps`` and ``seed``, a real number for the others.
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
        for field in dataclasses.fields(self):
            # A NumPy number (lr=np.float64(...)) would make the saved state unreadable.
            object.__setattr__(self, field.name, check_plain(field.name, getattr(self, field.name)))
        # Each by name: a comparison of a string ("1e-3") failed as "'>' not supported".
        check_int("steps", self.steps, minimum=0)
        check_int("batch_size", self.batch_size)
        check_int("warmup_steps", self.warmup_steps, minimum=0)
        if self.warmup_steps > self.steps:
            # It trained at a rate rising to warmup_steps / steps of lr, never decaying.
            raise ValueError(
                f"warmup_steps={self.warmup_steps} exceeds steps={self.steps}: training would end during the "
                "warm-up, the learning rate never reaching lr"
            )
        check_seed(self.seed)
        check_real("lr", self.lr)
        check_real("weight_decay", self.weight_decay, allow_zero=True)
        if self.grad_clip is not None:
            check_real("grad_clip", self.grad_clip)
        if not 0 < check_real("mask_rate", self.mask_rate) <= 1:
            raise ValueError(f"mask_rate must be in (0, 1], got {self.mask_rate}")

    def lr_at(self, step: int) -> float:
        """Learning rate of a step: linear warm-up, then cosine decay to 0.

        Parameters
        ----------
        step
            The optimiser step, 0-based.
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))


#: :func:`resolve_device`'s refusal of CUDA where there is none (the console command
#: gives it in its own terms).
NO_CUDA = "device='cuda' asked for, but CUDA is not available"


def resolve_device(device: str | torch.device) -> torch.device:
    """``'auto'`` → CUDA when available, else CPU; other values are checked: the CPU,
    or a CUDA device this machine has (``'cuda'``, ``'cuda:N'``)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'") from err
    if device.type not in ("cpu", "cuda"):  # the graph kernels and sparse attention run on these only
        raise ValueError(f"device {str(device)!r} is not supported; use 'cpu', 'cuda' (or 'cuda:N') or 'auto'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(NO_CUDA)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


def _model_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two :attr:`MaskedGeneModel.config`: encoder settings by
    value, gene lists by the names only one of them has (or their order)."""
    encoders = saved["encoder"], current["encoder"]
    differ = [
        f"{key}: saved {encoders[0].get(key)!r}, now {encoders[1].get(key)!r}"
        for key in sorted(encoders[0].keys() | encoders[1].keys())
        if encoders[0].get(key) != encoders[1].get(key)
    ]
    for key in ("gene_names", "control_genes"):
        old, new = list(saved[key]), list(current[key])
        if old != new:
            old_set, new_set = set(old), set(new)
            only_saved = [g for g in old if g not in new_set][:5]
            only_now = [g for g in new if g not in old_set][:5]
            detail = f"only saved {only_saved}, only now {only_now}" if only_saved or only_now else "another order"
            differ.append(f"{key}: {len(old)} saved, {len(new)} now ({detail})")
    return differ


#: Stands for an entry a metadata dict lacks (None may be a saved value).
_ABSENT = object()


def _metadata_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``'key: saved a, now b'`` for every entry in which two trainers' metadata differ,
    in the order of ``current`` (long values shortened, an entry one of them lacks
    shown as ``nothing``)."""

    def shown(metadata: dict[str, Any], key: str) -> str:
        return parallel._short(metadata[key]) if key in metadata else "nothing"

    keys = [*current, *(key for key in saved if key not in current)]
    return [
        f"{key}: saved {shown(saved, key)}, now {shown(current, key)}"
        for key in keys
        if saved.get(key, _ABSENT) != current.get(key, _ABSENT)
    ]


def _check_tokens(units: Sequence[Data], model: MaskedGeneModel) -> None:
    """Refuse units with a gene token the model has no embedding for (an IndexError
    from deep inside the first step, as for the units of a larger panel)."""
    genes = [unit.gene for unit in units if unit.gene.numel()]
    if not genes:
        return
    low, high = min(int(g.min()) for g in genes), max(int(g.max()) for g in genes)
    n_genes = model.encoder.n_genes
    if low < 0 or high >= n_genes:
        raise ValueError(
            f"the units hold gene tokens {low} to {high}, but the model has {n_genes} genes (tokens 0 to "
            f"{n_genes - 1}): cut the units from a graph whose genes are the model's tokens "
            "(graph.gene = model.gene_tokens(graph) matches another panel's genes by name)"
        )


def step_seed(seed: int, step: int, index: int, *, dropout: bool = False) -> int:
    """A 64-bit seed for one step: of the masks of unit ``index``, or with
    ``dropout=True`` of the dropout of process ``index`` (a stream of its own, so
    that it never repeats the masks' draws)."""
    entropy = [seed, step, index, 1] if dropout else [seed, step, index]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


class MaskedGeneTrainer:
    """Trains a :class:`MaskedGeneModel` on mini-batches of transcript units.

    Every random draw is a function of the seed and the step: the batch of step
    ``s`` (:func:`~stgraph.data.batching.batch_indices`), the masks of each unit in
    it (drawn on the CPU from :func:`step_seed` of the unit's index, so they do not
    depend on the device or on which process trains the unit) and dropout (seeded
    per step and process; the caller's global RNG is left untouched). A run resumed
    from a checkpoint (weights, optimiser, step) therefore follows the uninterrupted
    one exactly (bit-identical on the CPU) on the same kind of device.

    **Data parallel.** When a :mod:`torch.distributed` default process group is
    initialised, training is data-parallel (:mod:`stgraph.models.parallel`): every
    process passes the same units, model configuration and metadata (checked), starts
    from process 0's weights, and trains the units ``k, k + W, k + 2W, ...`` of each
    step's batch (process ``k`` of ``W``); the gradient is that of the mean loss over
    all selected tokens of the whole batch, summed across processes before clipping
    and the update. With ``dropout=0`` the model is the one a single process trains
    with the same ``batch_size`` (equal up to floating-point summation order);
    ``batch_size`` is the global batch. Process 0 alone writes checkpoints, every
    process reads them, so the checkpoint folder must be shared.

    A step whose whole batch has no target token makes no update (the optimiser is
    not stepped, so weight decay does not shrink the weights) and records a NaN loss.

    Parameters
    ----------
    model
        The model to train (moved to ``device``).
    units
        Units from :func:`~stgraph.data.batching.tile_units` or
        :func:`~stgraph.data.batching.cell_units`, genes as tokens of the model's
        vocabulary: units carry no gene names, so those of a graph of another panel
        (another order included) must be cut from it after
        ``graph.gene = model.gene_tokens(graph)`` (on a copy of the graph).
    config
        Training hyper-parameters.
    device
        ``'cpu'``, ``'cuda'`` or ``'auto'``.
    metadata
        Plain values describing the training data (for instance the held-out
        cells); saved with the state, and a resumed run must have the same. NumPy
        values and tensors are kept as Python numbers or lists.

    Raises
    ------
    ValueError
        If ``units`` is empty, or holds a gene token outside the model's vocabulary.
    TypeError
        If ``model`` is not a :class:`MaskedGeneModel`, ``config`` not a
        :class:`TrainingConfig`, ``units`` one graph rather than a sequence of them,
        or ``metadata`` holds a value that is neither plain Python, NumPy nor a tensor.
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
        if not isinstance(model, MaskedGeneModel):
            raise TypeError(f"model must be a stgraph.models.MaskedGeneModel, got {type(model).__name__}")
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a stgraph.models.TrainingConfig, got {type(config).__name__}")
        # A Data iterates over its (name, value) fields, which failed as "'tuple' object has no attribute".
        listed = None if isinstance(units, Data) else list(units)
        if listed is None or not all(isinstance(unit, Data) for unit in listed):
            raise TypeError(
                "units must be a sequence of graphs (stgraph.data.batching.tile_units or cell_units of the "
                f"transcript graph), got {type(units).__name__}"
            )
        if not listed:
            raise ValueError("no training units: the training set is empty")
        _check_tokens(listed, model)
        self.device = parallel.process_device(resolve_device(device))
        self.model = model.to(self.device)
        self.units = listed
        self.config = config
        self.metadata = check_plain("metadata", dict(metadata or {}))
        self.rank, self.world_size = parallel.world()
        parallel.check_identical("model configuration", model.config)
        parallel.check_identical("training configuration", dataclasses.asdict(config))
        parallel.check_identical("metadata", self.metadata)
        parallel.check_identical("units (count, transcripts)", (len(self.units), sum(u.num_nodes for u in self.units)))
        parallel.broadcast_module(self.model)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.step = 0
        self.history: list[float] = []
        self._random_pool = torch.nonzero(~model.is_control_gene).flatten().cpu()
        self._is_control = model.is_control_gene.cpu()

    @contextlib.contextmanager
    def _dropout_rng(self) -> Iterator[None]:
        """Dropout of this step and process seeded by :func:`step_seed`; the caller's
        RNG states are restored afterwards."""
        devices = [self.device.index] if self.device.type == "cuda" else []
        seed = step_seed(self.config.seed, self.step, self.rank, dropout=True)
        with torch.random.fork_rng(devices=devices):
            torch.default_generator.manual_seed(seed)
            if devices:
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(seed)
            yield

    def _masked(self, unit: Data, index: int) -> MaskedTokens:
        """The unit's corrupted tokens and targets in this step (on the CPU)."""
        generator = torch.Generator().manual_seed(step_seed(self.config.seed, self.step, index))
        return mask_tokens(
            unit.gene,
            mask_token=self.model.encoder.mask_token,
            rate=self.config.mask_rate,
            selectable=unit.core & ~self._is_control[unit.gene],
            random_pool=self._random_pool,
            generator=generator,
        )

    def _train_step(self) -> float:
        config = self.config
        indices = batch_indices(len(self.units), self.step, config.batch_size, config.seed)
        mine = indices[self.rank :: self.world_size]
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, count = 0.0, 0
        if mine:
            batch = collate_units([self.units[k] for k in mine]).to(self.device)
            masked = [self._masked(self.units[k], k) for k in mine]
            tokens = torch.cat([m.input for m in masked]).to(self.device)
            selected = torch.cat([m.selected for m in masked])
            count = int(selected.sum())  # counted on the CPU, before the copy to the device
            selected = selected.to(self.device)
            with self._dropout_rng():
                logits = self.model(tokens, batch.pos, batch.edge_index, batch.edge_dist, batch.origin)
            loss = masked_gene_loss(logits, batch.gene, selected)
            loss_sum = float(loss.detach()) * count
        total_sum, total_count = parallel.sum_across([loss_sum, count], self.device)
        if not total_count:
            # No target in the whole batch, so no gradient: AdamW's weight decay and
            # momentum would still move the weights. Every process skips alike.
            self.step += 1
            return math.nan
        if mine:
            # The mean over this process's targets, weighted by its share of all targets:
            # summed over processes, the gradient of the mean over the whole batch.
            (loss * (count / max(total_count, 1.0))).backward()
        parameters = list(self.model.parameters())
        parallel.sum_gradients(parameters)
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        self.optimizer.step()
        self.step += 1
        return total_sum / total_count

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
        The loss of every step so far: NaN for a step whose batch had no target token
        (none drawn among the core, non-control tokens of its units), which leaves
        the weights and the optimiser unchanged.

        Raises
        ------
        TypeError
            If ``steps`` or ``checkpoint_every`` is not an integer, or ``progress`` not a bool.
        ValueError
            If ``steps`` is negative or exceeds ``config.steps``, ``checkpoint_every`` is
            below 1 or given without ``checkpoint_path``, or (data parallel) the processes
            are at different steps, as when some restored a checkpoint that others,
            reading another folder, did not find.
        OSError
            Before the first step, if process 0 cannot write to ``checkpoint_path``
            (:func:`~stgraph.models.checkpoint.check_writable`: a path that is a
            folder, a folder it cannot create or write to, or a disk without the free space of
            :meth:`checkpoint_size`); during training, if a checkpoint cannot be
            written (:meth:`save`). Under :mod:`torch.distributed` every process raises.
        """
        progress = check_bool("progress", progress)
        # 1.5 trained to step 2 and -1 returned at once; "3" failed as "'>' not supported".
        stop = self.config.steps if steps is None else check_int("steps", steps, minimum=0)
        if stop > self.config.steps:
            raise ValueError(f"cannot train to step {stop}: the schedule ends at {self.config.steps}")
        if checkpoint_every is not None:
            check_int("checkpoint_every", checkpoint_every)
            if checkpoint_path is None:  # it was ignored: no checkpoint was written
                raise ValueError(
                    f"checkpoint_every={checkpoint_every} needs checkpoint_path: where to write the checkpoints"
                )
        # A process that restored a checkpoint the others did not see would sum its
        # gradients with those of other steps' batches, then wait forever for the rest.
        parallel.check_identical("starting step (every process resumes from the checkpoint process 0 "
                                 "wrote, so its folder must be one they all read)", self.step)
        if checkpoint_path is not None:
            self._on_process_0(lambda: check_writable(checkpoint_path, self.checkpoint_size()))
        self.model.train()
        bar = tqdm(total=stop, initial=min(self.step, stop), disable=not progress or self.rank > 0,
                   desc="MGM pretraining")
        with bar:
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
        """Configuration, metadata, optimiser, step and loss history.

        No random-number state is needed: every draw is a function of the seed and
        the step, so resuming from any checkpoint follows the uninterrupted run.
        """
        return dict(
            config=dataclasses.asdict(self.config),
            metadata=dict(self.metadata),
            optimizer=self.optimizer.state_dict(),
            step=self.step,
            history=list(self.history),
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; its configuration must equal this trainer's.

        Parameters
        ----------
        state
            A dict returned by :meth:`state_dict`.

        Raises
        ------
        ValueError
            If the saved training configuration or metadata differ from this trainer's;
            nothing is restored then.
        """
        self._check_resumable(state)
        self._load_training(state)

    def _check_resumable(self, state: dict[str, Any]) -> None:
        """Raise a ValueError unless ``state`` has this trainer's configuration and metadata."""
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
                "cannot resume on different training data: "
                + "; ".join(_metadata_differences(state["metadata"], self.metadata))
            )

    def _load_training(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state["history"])

    def checkpoint_size(self) -> int:
        """Bytes a checkpoint of this trainer takes at most, about: the parameters and
        buffers, AdamW's two moments of every parameter, the loss history of every
        step, and 1 MiB for the configuration and the file's own structure."""
        parameters = sum(p.numel() * p.element_size() for p in self.model.parameters())
        buffers = sum(b.numel() * b.element_size() for b in self.model.buffers())
        return 3 * parameters + buffers + 16 * self.config.steps + 2**20

    def _on_process_0(self, function) -> None:
        """Call ``function()`` on process 0; an OSError it raises is raised on every process."""
        error = None
        if self.rank == 0:
            try:
                function()
            except OSError as err:
                error = err
        parallel.raise_any_error(error)

    def save(self, path: str | os.PathLike) -> None:
        """Save the model and this trainer's state (process 0 writes, all wait).

        Parameters
        ----------
        path
            Checkpoint file to write (see :func:`~stgraph.models.save_checkpoint`).

        Raises
        ------
        OSError
            On every process, if process 0 cannot write the file (a checkpoint already
            at ``path`` is left as it was).
        """
        self._on_process_0(lambda: save_checkpoint(path, self.model, self.state_dict()))

    def restore(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save`.

        The checkpoint's model configuration (its ``radius`` aside, a property of the
        training data, which the metadata describe), training configuration and
        metadata must equal this trainer's; its weights and training state replace the
        current ones.

        Parameters
        ----------
        path
            Checkpoint file written by :meth:`save`.

        Raises
        ------
        ValueError
            If the checkpoint has no training state, or its model configuration,
            training configuration or metadata differ from this trainer's (the
            message names what differs). All are
            checked before anything is loaded: the model and trainer are then unchanged.
        """
        payload = read_checkpoint(path)
        training = payload.get("training")
        if training is None:
            raise ValueError(f"{path} holds a model without training state; cannot resume")
        # The radius is the training data's, which the metadata (checked below) describe;
        # a checkpoint written before the model recorded it has none.
        saved, current = (
            {key: value for key, value in config.items() if key != "radius"}
            for config in (payload["model_config"], self.model.config)
        )
        if saved != current:
            differ = _model_differences(saved, current)
            message = f"{path} holds a model of another configuration; cannot resume: " + "; ".join(differ)
            # A model setting can follow from the data (the default distance penalties from
            # the radius): name the data that differ too, or the user may not see why.
            data = _metadata_differences(training["metadata"], self.metadata)
            raise ValueError(message + (f" (and other training data: {'; '.join(data)})" if data else ""))
        self._check_resumable(training)
        self.model.load_state_dict(payload["model_state"])
        self._load_training(training)
