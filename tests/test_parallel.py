"""Data-parallel masked gene modelling over torch.distributed (gloo, processes on the CPU)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from stgraph.models import MaskedGeneModel, MaskedGeneTrainer, parallel
from stgraph.models.checkpoint import read_checkpoint
from stgraph.nn import TranscriptEncoder
from stgraph.tl._pretrain import CHECKPOINT_NAME, data_digest, pretrain
from tests.test_encoder import synthetic_graph

# 15 tile units; a global batch of 7 units gives steps of 7, 7 and 1 units, so with
# two processes step 2 leaves process 1 without any unit.
OPTIONS = dict(d_model=16, n_layers=2, heads=2, tile_size=5.0, batch_size=7, steps=4, lr=3e-3,
               progress=False, device="cpu", seed=5)


def _train(rank: int, world_size: int, init_file: str, out: str, options: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        result = pretrain(synthetic_graph(), **options)
        # A model initialised differently in each process starts from process 0's weights.
        torch.manual_seed(rank)
        other = MaskedGeneTrainer(_model(), result.trainer.units, result.trainer.config,
                                  metadata=result.trainer.metadata)
        broadcast = {k: v.clone() for k, v in other.model.state_dict().items()}
        # Interrupted after 2 steps and resumed from process 0's checkpoint by every process.
        other.fit(steps=2, progress=False, checkpoint_path=Path(out) / "resume.pt")
        resumed = MaskedGeneTrainer(_model(), other.units, other.config, metadata=other.metadata)
        resumed.restore(Path(out) / "resume.pt")
        resumed.fit(progress=False)
        other.fit(progress=False)
        torch.save({"history": result.history, "weights": result.model.state_dict(),
                    "rank": result.trainer.rank, "world_size": result.trainer.world_size,
                    "broadcast": broadcast, "resumed": (resumed.history, resumed.model.state_dict()),
                    "uninterrupted": (other.history, other.model.state_dict())},
                   Path(out) / f"rank{rank}.pt")
    except ValueError as err:
        torch.save({"error": str(err)}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _model() -> MaskedGeneModel:
    graph = synthetic_graph()
    return MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 16, 2, 2), graph.gene_names)


def _spawn(tmp_path: Path, world_size: int, per_rank_options) -> list[dict]:
    out = tmp_path / "out"
    out.mkdir()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_train, args=(r, world_size, str(tmp_path / "init"), str(out), per_rank_options(r)))
             for r in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


def test_two_processes_train_the_model_one_process_trains(tmp_path):
    single = pretrain(synthetic_graph(), **OPTIONS, checkpoint_dir=tmp_path / "single")
    ranks = _spawn(tmp_path, 2, lambda r: {**OPTIONS, "checkpoint_dir": str(tmp_path / "ddp")})
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    # Every process ends with the same weights and the loss of the whole batch.
    assert ranks[0]["history"] == ranks[1]["history"]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(ranks[1]["weights"][key], value), key
    for key, value in ranks[0]["broadcast"].items():
        assert torch.equal(ranks[1]["broadcast"][key], value), key
    torch.manual_seed(1)
    assert not torch.equal(_model().head.decoder.weight, ranks[0]["broadcast"]["head.decoder.weight"])
    # A data-parallel run resumed from its checkpoint follows the uninterrupted one exactly.
    for rank in ranks:
        (resumed_history, resumed), (history, uninterrupted) = rank["resumed"], rank["uninterrupted"]
        assert resumed_history == history and len(history) == OPTIONS["steps"]
        for key, value in uninterrupted.items():
            assert torch.equal(resumed[key], value), key
    # ... which are those of one process with the same global batch, up to summation order.
    assert ranks[0]["history"] == pytest.approx(single.history, rel=1e-5)
    reference = single.model.state_dict()
    compared = 0
    for key, value in ranks[0]["weights"].items():
        # Softmax over j is blind to a key bias (it adds q_i·b to every score of i): its true
        # gradient is 0 and Adam turns the round-off left in it into steps of ±lr.
        if not key.endswith("lin_key.bias"):
            torch.testing.assert_close(value, reference[key], rtol=0, atol=1e-6)
            compared += 1
    assert compared == len(reference) - OPTIONS["n_layers"]
    moved = max(float((single.model.state_dict()[k] - v).abs().max()) for k, v in _initial_weights().items())
    assert moved > 1e-3  # the comparison is not between untrained models
    # Process 0 wrote the checkpoint every process could resume from.
    saved = read_checkpoint(tmp_path / "ddp" / CHECKPOINT_NAME)
    assert saved["training"]["step"] == OPTIONS["steps"]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(saved["model_state"][key], value), key


def _initial_weights() -> dict[str, torch.Tensor]:
    return pretrain(synthetic_graph(), **{**OPTIONS, "steps": 0}).model.state_dict()


def test_processes_with_different_settings_are_refused(tmp_path):
    # The message named the kind of setting only, not which one differed nor how.
    ranks = _spawn(tmp_path, 2, lambda r: {**OPTIONS, "lr": 3e-3 * (1 + r), "mask_rate": 0.15 + 0.05 * r})
    for rank, result in enumerate(ranks):
        assert result["error"] == (
            "data-parallel training needs the same training configuration on every process; "
            f"processes [1] differ from process 0 (this is process {rank}): lr is 0.003 on process 0, "
            "0.006 on process 1; mask_rate is 0.15 on process 0, 0.2 on process 1"
        )


def test_a_checkpoint_folder_not_shared_by_the_processes_is_refused(tmp_path):
    # Process 0 resumed at the last step while process 1, reading an empty folder,
    # started from 0: its steps' gradients were summed with nothing, then it waited
    # for collectives that never came (until the 30-minute gloo timeout).
    pretrain(synthetic_graph(), **OPTIONS, checkpoint_dir=tmp_path / "rank0")
    ranks = _spawn(tmp_path, 2, lambda r: {**OPTIONS, "checkpoint_dir": str(tmp_path / f"rank{r}"), "resume": True})
    for rank, result in enumerate(ranks):
        assert result["error"] == (
            "data-parallel training needs the same starting step (every process resumes from the "
            "checkpoint process 0 wrote, so its folder must be one they all read) on every process; "
            f"processes [1] differ from process 0 (this is process {rank}): 4 on process 0, 0 on process 1"
        )
    assert not (tmp_path / "rank1" / CHECKPOINT_NAME).exists()


def test_processes_with_other_data_of_as_many_transcripts_are_refused(monkeypatch):
    # Only the number of units and of transcripts was compared: a process 1 whose
    # transcripts lay 0.01 µm away from process 0's trained on them, its gradients summed.
    graph, moved = synthetic_graph(), synthetic_graph()
    moved.pos = moved.pos + 0.01
    digests = data_digest(graph), data_digest(moved)

    def gather(out, value):  # process 1 sends the metadata of the moved transcripts
        other = {**value, "data_digest": digests[1]} if isinstance(value, dict) and "data_digest" in value else value
        out[:] = [value, other]

    monkeypatch.setattr(parallel, "world", lambda: (0, 2))
    monkeypatch.setattr(parallel.dist, "all_gather_object", gather)
    with pytest.raises(ValueError) as err:
        pretrain(graph, **OPTIONS)
    assert str(err.value) == (
        "data-parallel training needs the same metadata on every process; processes [1] differ from "
        f"process 0 (this is process 0): data_digest is '{digests[0]}' on process 0, '{digests[1]}' on process 1"
    )


def test_an_error_of_process_0_is_raised_on_every_process(monkeypatch):
    # Process 0 failed to write a checkpoint and raised; the others waited for it at
    # the barrier (until the gloo timeout, 30 minutes by default).
    error = OSError("cannot write the checkpoint run/masked_gene_model.pt: [Errno 28] No space left on device")
    monkeypatch.setattr(parallel.dist, "all_gather_object",
                        lambda out, value: out.__setitem__(slice(None), [f"OSError: {error}", value, None]))
    monkeypatch.setattr(parallel, "world", lambda: (1, 3))
    with pytest.raises(OSError) as raised:
        parallel.raise_any_error(None)
    assert str(raised.value) == (
        "process 0 failed (this is process 1): OSError: cannot write the checkpoint "
        "run/masked_gene_model.pt: [Errno 28] No space left on device"
    )
    monkeypatch.setattr(parallel, "world", lambda: (0, 3))
    with pytest.raises(OSError) as raised:
        parallel.raise_any_error(error)
    assert raised.value is error
    monkeypatch.setattr(parallel.dist, "all_gather_object", lambda out, value: out.__setitem__(slice(None), [None] * 3))
    parallel.raise_any_error(None)  # no process failed


def test_the_message_names_the_nested_entries_that_differ(monkeypatch):
    gathered = [{"encoder": {"d_model": 16, "heads": 2}, "gene_names": [f"gene_{k}" for k in range(40)]},
                {"encoder": {"d_model": 32, "heads": 2}, "gene_names": [f"gene_{k}" for k in range(41)]},
                {"encoder": {"d_model": 16, "heads": 2}, "gene_names": [f"gene_{k}" for k in range(40)]}]
    monkeypatch.setattr(parallel, "world", lambda: (2, 3))
    monkeypatch.setattr(parallel.dist, "all_gather_object", lambda out, value: out.__setitem__(slice(None), gathered))
    with pytest.raises(ValueError) as err:
        parallel.check_identical("model configuration", gathered[2])
    assert str(err.value) == (
        "data-parallel training needs the same model configuration on every process; processes [1] "
        "differ from process 0 (this is process 2): encoder.d_model is 16 on process 0, 32 on process 1; "
        "gene_names is 40 values ['gene_0', 'gene_1', 'gene_2', ...] on process 0, 41 values ['gene_0', "
        "'gene_1', 'gene_2', ...] on process 1"
    )


def test_without_a_process_group_training_is_single_process(monkeypatch):
    assert parallel.world() == (0, 1)
    cpu = torch.device("cpu")
    assert parallel.sum_across([1.5, 2], cpu) == [1.5, 2.0]
    parallel.check_identical("anything", object())  # nothing to compare against
    assert parallel.process_device(cpu) == cpu
    assert parallel.process_device(torch.device("cuda", 3)) == torch.device("cuda", 3)
    monkeypatch.setattr(parallel, "world", lambda: (1, 2))
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)  # this machine may have no GPU
    assert parallel.process_device(torch.device("cuda")) == torch.device("cuda", 1)


def test_each_process_makes_its_gpu_the_current_cuda_device(monkeypatch):
    # all_gather_object (the settings' comparison) puts its tensors on the current CUDA device:
    # cuda:0 in every process of a machine, which NCCL refuses ("Duplicate GPU detected").
    current = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setattr(parallel, "world", lambda: (1, 2))
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert parallel.process_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert parallel.process_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert current == [torch.device("cuda", 1), torch.device("cuda", 0)]
    parallel.process_device(torch.device("cpu"))
    monkeypatch.setattr(parallel, "world", lambda: (0, 1))
    parallel.process_device(torch.device("cuda", 3))  # one process: the caller's current device is left
    assert len(current) == 2
