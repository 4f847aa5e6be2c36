"""Masked gene modelling: training loop, seeding, resume, held-out cells, evaluation."""
from __future__ import annotations

import copy
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import stgraph
from stgraph.data.batching import batch_indices, epoch_order, tile_units
from stgraph.graph import radius_graph
from stgraph.models.evaluation import (
    evaluate_held_out,
    evaluation_groups,
    fit_neighbour_strength,
    gene_prior,
    nearest_visible_gene,
    score_frequency,
    score_neighbours,
    visible_neighbour_counts,
)
from stgraph.models import checkpoint
from stgraph.models.mgm import MaskedGeneModel
from stgraph.models.trainer import MaskedGeneTrainer, TrainingConfig, resolve_device
from stgraph.nn import TranscriptEncoder
from stgraph.nn.conv import SpatialTransformerConv
from stgraph.tl._pretrain import CHECKPOINT_NAME, data_digest, distance_penalty_ladder, pretrain
from tests.test_encoder import DistanceWeightedMean, synthetic_graph

SMALL = dict(d_model=16, n_layers=2, heads=2, tile_size=5.0, batch_size=2, progress=False, device="cpu")


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert_same_weights_as(a, weights(b))


def assert_same_weights_as(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    current = weights(model)
    assert current.keys() == expected.keys()
    for key in current:
        assert torch.equal(current[key], expected[key]), key


def test_same_seed_gives_identical_runs_and_other_seeds_differ():
    graph = synthetic_graph()
    a = pretrain(graph, steps=4, seed=3, **SMALL)
    b = pretrain(graph, steps=4, seed=3, **SMALL)
    assert a.history == b.history and len(a.history) == 4
    assert_same_weights(a.model, b.model)
    c = pretrain(graph, steps=4, seed=4, **SMALL)
    assert c.history != a.history


def test_a_numpy_seed_trains_as_the_same_python_seed():
    # np.int64 reached torch's manual_seed, which refused it ("an integer is required")
    graph = synthetic_graph()
    a = pretrain(graph, steps=2, seed=3, **SMALL)
    b = pretrain(graph, steps=2, seed=np.int64(3), **SMALL)
    assert a.history == b.history and len(a.history) == 2
    assert_same_weights(a.model, b.model)

def test_pretrain_leaves_callers_rng_and_data_alone():
    graph = synthetic_graph()
    before = graph.clone()
    state = torch.get_rng_state()
    pretrain(graph, steps=2, dropout=0.1, **SMALL)
    assert torch.equal(torch.get_rng_state(), state)
    for key in ("gene", "pos", "edge_index", "edge_dist", "cell"):
        assert torch.equal(graph[key], before[key])
    assert "origin" not in graph


def _trainer(graph: Data, config: TrainingConfig, init_seed: int) -> MaskedGeneTrainer:
    torch.manual_seed(init_seed)
    model = MaskedGeneModel(
        TranscriptEncoder(len(graph.gene_names), 16, 2, 2, dropout=0.1), graph.gene_names, ["blank1"]
    )
    return MaskedGeneTrainer(model, tile_units(graph, 5.0, 2.0), config)


def test_a_step_without_targets_records_nan_and_leaves_the_weights(monkeypatch):
    # It recorded a loss of 0.0 and still stepped AdamW: weight decay and momentum moved the weights.
    graph = synthetic_graph()
    trainer = _trainer(graph, TrainingConfig(steps=3, batch_size=2, lr=0.05, weight_decay=0.5, seed=1), init_seed=0)
    masked = MaskedGeneTrainer._masked

    def none_selected_at_step_1(self, unit, index):
        tokens = masked(self, unit, index)
        return tokens._replace(selected=torch.zeros_like(tokens.selected)) if self.step == 1 else tokens

    monkeypatch.setattr(MaskedGeneTrainer, "_masked", none_selected_at_step_1)
    trainer.fit(steps=1, progress=False)
    after_first, optimizer_state = weights(trainer.model), copy.deepcopy(trainer.optimizer.state_dict())
    trainer.fit(steps=2, progress=False)
    assert trainer.step == 2 and math.isnan(trainer.history[1])
    assert_same_weights_as(trainer.model, after_first)
    state = trainer.optimizer.state_dict()["state"]
    for index, saved in optimizer_state["state"].items():
        assert all(torch.equal(state[index][key], value) for key, value in saved.items())
    trainer.fit(progress=False)  # a step with targets updates again
    assert trainer.history[0] > 0 and trainer.history[2] > 0
    assert any(not torch.equal(value, after_first[key]) for key, value in weights(trainer.model).items())


def test_trainer_progress_must_be_a_bool():
    # progress="False" is a true string: it showed the bar.
    trainer = _trainer(synthetic_graph(), TrainingConfig(steps=1, batch_size=2), init_seed=0)
    with pytest.raises(TypeError, match=r"^progress must be a bool \(True or False\), got 'False'$"):
        trainer.fit(progress="False")
    assert trainer.step == 0


def test_trainer_refuses_arguments_of_the_wrong_kind_by_name():
    # They failed with "asdict() should be called on dataclass instances", "'TranscriptEncoder'
    # object has no attribute 'is_control_gene'" and "'tuple' object has no attribute 'num_nodes'".
    graph = synthetic_graph()
    model = _trainer(graph, TrainingConfig(steps=1), init_seed=0).model
    units, config = tile_units(graph, 5.0, 2.0), TrainingConfig(steps=1, batch_size=2)
    units_message = (
        r"^units must be a sequence of graphs \(stgraph.data.batching.tile_units or cell_units of the "
        r"transcript graph\), got {}$"
    )
    for arguments, message in (
        ((model, units, dict(steps=1)), "^config must be a stgraph.models.TrainingConfig, got dict$"),
        ((model.encoder, units, config), "^model must be a stgraph.models.MaskedGeneModel, got TranscriptEncoder$"),
        ((model, graph, config), units_message.format("Data")),
        ((model, [units[0], graph.gene], config), units_message.format("list")),
    ):
        with pytest.raises(TypeError, match=message):
            MaskedGeneTrainer(*arguments)
    assert len(MaskedGeneTrainer(model, iter(units), config).units) == len(units)


def test_trainer_refuses_units_of_genes_the_model_has_no_embedding_for():
    # The units of a larger panel failed in the first step: "index 13 is out of bounds for
    # dimension 0 with size 12".
    graph = synthetic_graph(n_genes=14)
    model = _trainer(synthetic_graph(), TrainingConfig(steps=1), init_seed=0).model
    message = (
        r"^the units hold gene tokens 0 to 13, but the model has 12 genes \(tokens 0 to 11\): cut the units "
        r"from a graph whose genes are the model's tokens \(graph.gene = model.gene_tokens\(graph\) matches "
        r"another panel's genes by name\)$"
    )
    with pytest.raises(ValueError, match=message):
        MaskedGeneTrainer(model, tile_units(graph, 5.0, 2.0), TrainingConfig(steps=1, batch_size=2))
    # A unit without transcripts has no token to check (min() of nothing failed).
    empty = tile_units(synthetic_graph(), 5.0, 2.0)[0].subgraph(torch.zeros(0, dtype=torch.long))
    assert MaskedGeneTrainer(model, [empty], TrainingConfig(steps=1)).units[0].num_nodes == 0


def test_trainer_fit_checks_steps_and_checkpoint_every():
    # steps=1.5 trained to step 2, steps=-1 returned at once, steps="1" failed as "'>' not
    # supported"; checkpoint_every without checkpoint_path wrote no checkpoint, silently.
    trainer = _trainer(synthetic_graph(), TrainingConfig(steps=3, batch_size=2), init_seed=0)
    for options, error, message in (
        (dict(steps=1.5), TypeError, "^steps must be an integer, got 1.5$"),
        (dict(steps="1"), TypeError, "^steps must be an integer, got '1'$"),
        (dict(steps=-1), ValueError, "^steps must be an integer >= 0, got -1$"),
        (dict(checkpoint_every=1), ValueError,
         "^checkpoint_every=1 needs checkpoint_path: where to write the checkpoints$"),
    ):
        with pytest.raises(error, match=message):
            trainer.fit(progress=False, **options)
    assert trainer.step == 0 and trainer.history == []
    assert len(trainer.fit(np.int64(2), progress=False)) == 2


def test_resumed_training_matches_uninterrupted(tmp_path):
    graph = synthetic_graph()
    config = TrainingConfig(steps=6, batch_size=2, lr=3e-3, warmup_steps=2, seed=11)
    uninterrupted = _trainer(graph, config, init_seed=0)
    uninterrupted.fit(progress=False)

    first = _trainer(graph, config, init_seed=0)
    first.fit(steps=3, progress=False, checkpoint_path=tmp_path / "ckpt.pt")
    resumed = _trainer(graph, config, init_seed=99)  # other initial weights, replaced on restore
    resumed.restore(tmp_path / "ckpt.pt")
    assert resumed.step == 3
    history = resumed.fit(progress=False)

    assert history == uninterrupted.history
    assert_same_weights(resumed.model, uninterrupted.model)
    for key, value in uninterrupted.optimizer.state_dict()["state"][0].items():
        assert torch.equal(resumed.optimizer.state_dict()["state"][0][key], value)


class Interrupted(Exception):
    pass


def interrupt_at(monkeypatch, step: int) -> None:
    """Make every trainer raise :class:`Interrupted` when it reaches ``step`` (a crash mid-fit)."""
    train_step = MaskedGeneTrainer._train_step

    def crashing(self):
        if self.step == step:
            raise Interrupted
        return train_step(self)

    monkeypatch.setattr(MaskedGeneTrainer, "_train_step", crashing)


def test_resume_from_a_checkpoint_written_during_fit_is_exact_with_dropout(tmp_path, monkeypatch):
    graph = synthetic_graph()
    config = TrainingConfig(steps=7, batch_size=2, lr=3e-3, warmup_steps=2, seed=11)
    uninterrupted = _trainer(graph, config, init_seed=0)
    uninterrupted.fit(progress=False)

    crashed = _trainer(graph, config, init_seed=0)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 5)
        with pytest.raises(Interrupted):
            crashed.fit(progress=False, checkpoint_path=tmp_path / "ckpt.pt", checkpoint_every=4)
    resumed = _trainer(graph, config, init_seed=99)
    resumed.restore(tmp_path / "ckpt.pt")
    assert resumed.step == 4
    assert resumed.fit(progress=False) == uninterrupted.history
    assert_same_weights(resumed.model, uninterrupted.model)


def test_pretrain_resume_after_a_crash_is_exact_with_dropout(tmp_path, monkeypatch):
    graph = synthetic_graph()
    options = dict(steps=5, dropout=0.3, checkpoint_dir=tmp_path, checkpoint_every=2, **SMALL)
    uninterrupted = pretrain(graph, **{**options, "checkpoint_dir": tmp_path / "full"})
    with monkeypatch.context() as patch:
        interrupt_at(patch, 3)
        with pytest.raises(Interrupted):
            pretrain(graph, **options)
    resumed = pretrain(graph, resume=True, **options)
    assert resumed.history == uninterrupted.history and len(resumed.history) == 5
    assert_same_weights(resumed.model, uninterrupted.model)


def test_restore_rejects_other_configuration(tmp_path):
    graph = synthetic_graph()
    config = TrainingConfig(steps=2, batch_size=2)
    trainer = _trainer(graph, config, 0)
    trainer.fit(progress=False, checkpoint_path=tmp_path / "ckpt.pt")
    other = _trainer(graph, TrainingConfig(steps=2, batch_size=2, lr=5e-4), 1)
    before = weights(other.model)
    message = "^cannot resume with a different training configuration: lr: saved 0.001, now 0.0005$"
    with pytest.raises(ValueError, match=message):
        other.restore(tmp_path / "ckpt.pt")
    # The weights were loaded before the configuration was checked.
    assert_same_weights_as(other.model, before)
    assert other.step == 0 and other.history == [] and not other.optimizer.state
    elsewhere = MaskedGeneTrainer(other.model, tile_units(graph, 5.0, 2.0), config, metadata=dict(cells="other"))
    message = "^cannot resume on different training data: cells: saved nothing, now 'other'$"
    with pytest.raises(ValueError, match=message):
        elsewhere.restore(tmp_path / "ckpt.pt")
    assert_same_weights_as(elsewhere.model, before)
    with pytest.raises(ValueError, match="schedule ends at 2"):
        trainer.fit(steps=5)


def test_numpy_training_settings_and_metadata_are_saved_as_python_values(tmp_path):
    # lr=np.float64(...) made the saved training state unreadable (weights_only=True).
    graph = synthetic_graph()
    config = TrainingConfig(steps=np.int64(2), batch_size=np.int64(2), lr=np.float64(1e-3), seed=np.uint32(3))
    assert config == TrainingConfig(steps=2, batch_size=2, lr=1e-3, seed=3)
    assert [type(getattr(config, k)) for k in ("steps", "batch_size", "lr", "seed")] == [int, int, float, int]
    metadata = dict(radius=np.float32(0.5), held_out=np.array(["c1"]))

    def trainer(init_seed: int, metadata: dict) -> MaskedGeneTrainer:
        model = _trainer(graph, config, init_seed).model
        return MaskedGeneTrainer(model, tile_units(graph, 5.0, 2.0), config, metadata=metadata)

    first = trainer(0, metadata)
    assert first.metadata == dict(radius=0.5, held_out=["c1"])
    first.fit(progress=False, checkpoint_path=tmp_path / "ckpt.pt")
    resumed = trainer(1, metadata)
    resumed.restore(tmp_path / "ckpt.pt")
    assert resumed.step == 2 and resumed.history == first.history
    assert_same_weights(resumed.model, first.model)
    with pytest.raises(TypeError, match=r"^metadata\['tag'\] must hold plain Python values .*, got object$"):
        trainer(0, dict(tag=object()))


def test_a_checkpoint_cut_short_a_pickled_model_or_a_folder_is_refused_by_name(tmp_path):
    # A copy cut short raised torch's "OSError: [Errno 22] Invalid argument" (or a
    # RuntimeError); the checkpoint_dir passed for the file in it read as "no checkpoint".
    graph = synthetic_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names)
    path = checkpoint.save_checkpoint(tmp_path / "run" / CHECKPOINT_NAME, model)
    whole, cut = path.read_bytes(), tmp_path / "cut.pt"
    for length in (len(whole) // 100, len(whole) // 2, len(whole) - 10):
        cut.write_bytes(whole[:length])
        message = (
            f"^{re.escape(str(cut))} is not a stgraph masked gene model checkpoint: torch.load cannot read "
            "it \\((OSError|RuntimeError)\\): a torch.save file \\(zip archive\\) damaged or cut short, "
            "e.g. by an interrupted copy$"
        )
        with pytest.raises(ValueError, match=message):
            checkpoint.load_model(cut)
    torch.save(model, tmp_path / "whole.pt")
    message = (
        r"torch.load cannot read it \(UnpicklingError\): a torch.save file of objects that "
        r"torch.load\(weights_only=True\) does not load, such as a whole model saved with torch.save\(model, path\)$"
    )
    with pytest.raises(ValueError, match=message):
        checkpoint.load_model(tmp_path / "whole.pt")
    message = (
        f"^no stgraph masked gene model checkpoint at {re.escape(str(tmp_path / 'run'))}: it is a folder; "
        f"pass the file, e.g. {re.escape(repr(str(path)))}$"
    )
    with pytest.raises(FileNotFoundError, match=message):
        checkpoint.load_model(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r": it is a folder, which holds no \.pt file$"):
        checkpoint.read_checkpoint(tmp_path / "empty")
    assert checkpoint.load_model(path).gene_names == graph.gene_names


def test_load_model_with_another_layer_than_the_one_trained_is_refused_by_name(tmp_path):
    # conv= on a pretrain checkpoint blamed "conv_kwargs" the caller never passed; on another
    # checkpoint torch's RuntimeError listed the missing and unexpected weights, naming no file.
    graph = synthetic_graph()
    pretrain(graph, steps=1, checkpoint_dir=tmp_path, **SMALL)
    path = tmp_path / CHECKPOINT_NAME
    message = (
        r"^the config records the default layer, SpatialTransformerConv, with conv_kwargs \['lambda_init'\], "
        r"which apply to it only: leave conv out \(the default layer is always importable\)$"
    )
    with pytest.raises(ValueError, match=message):
        checkpoint.load_model(path, conv=DistanceWeightedMean)
    assert checkpoint.load_model(path, conv=SpatialTransformerConv).gene_names == graph.gene_names
    torch.manual_seed(0)
    plain = checkpoint.save_checkpoint(
        tmp_path / "plain.pt", MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names)
    )
    message = (
        f"^the weights of {re.escape(str(plain))} do not fit the model its configuration builds with "
        r"conv=DistanceWeightedMean: Error\(s\) in loading state_dict for MaskedGeneModel:"
    )
    with pytest.raises(ValueError, match=message):
        checkpoint.load_model(plain, conv=DistanceWeightedMean)


def test_a_checkpoint_is_written_to_a_file_of_a_masked_gene_model_only(tmp_path):
    # A folder failed in os.replace, leaving the unfinished file beside it (after the whole
    # run, for trainer.fit); an encoder was saved, and its checkpoint failed to load with
    # KeyError 'encoder'; a pretrain result failed with an AttributeError.
    graph = synthetic_graph()
    result = pretrain(graph, steps=1, **SMALL)
    message = f"^the checkpoint path {re.escape(str(tmp_path))} is a folder: pass the path of a file \\(one inside it\\)$"
    with pytest.raises(IsADirectoryError, match=message):
        checkpoint.save_checkpoint(tmp_path, result.model)
    trainer = _trainer(graph, TrainingConfig(steps=2, batch_size=2), init_seed=0)
    with pytest.raises(IsADirectoryError, match=message):
        trainer.fit(progress=False, checkpoint_path=tmp_path)
    assert trainer.step == 0
    assert not tmp_path.with_name(tmp_path.name + ".partial").exists()
    for wrong, name in ((result.model.encoder, "TranscriptEncoder"), (result, "PretrainResult")):
        message = rf"^model must be a stgraph.models.MaskedGeneModel \(tl.pretrain\(...\).model\), got {name}$"
        with pytest.raises(TypeError, match=message):
            checkpoint.save_checkpoint(tmp_path / "model.pt", wrong)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_that_would_not_load_is_not_written(tmp_path):
    # torch.save wrote a training state holding NumPy values, and read_checkpoint
    # (weights_only=True) then refused the file: the run's checkpoint was lost.
    graph = synthetic_graph()
    result = pretrain(graph, steps=1, **SMALL)
    path = checkpoint.save_checkpoint(tmp_path / "model.pt", result.model)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"^the checkpoint .*model\.pt would not load \(torch\.load\(weights_only=True\) "
                       r"refuses what it holds\); training must hold plain Python values and tensors"):
        checkpoint.save_checkpoint(path, result.model, training={"step": np.int64(3)})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    written = checkpoint.save_checkpoint(tmp_path / "ok.pt", result.model, training={"step": 3})
    assert checkpoint.read_checkpoint(written)["training"] == {"step": 3}


def test_pretrain_checkpoint_dir_and_resume(tmp_path):
    graph = synthetic_graph()
    first = pretrain(graph, steps=3, checkpoint_dir=tmp_path, checkpoint_every=2, **SMALL)
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    again = pretrain(graph, steps=3, checkpoint_dir=tmp_path, resume=True, **SMALL)
    assert again.history == first.history and again.trainer.step == 3
    assert_same_weights(again.model, first.model)
    with pytest.raises(ValueError, match="different training configuration"):
        pretrain(graph, steps=3, lr=0.01, checkpoint_dir=tmp_path, resume=True, **SMALL)
    with pytest.raises(ValueError, match="different training data"):
        pretrain(graph, steps=3, held_out_cells=["c0"], checkpoint_dir=tmp_path, resume=True, **SMALL)
    # It said only 'another configuration', leaving the user to guess what differs.
    saved = re.escape(str(tmp_path / CHECKPOINT_NAME))
    message = f"^{saved} holds a model of another configuration; cannot resume: d_model: saved 16, now 8; ff_dim: saved 64, now 32$"
    with pytest.raises(ValueError, match=message):
        pretrain(graph, steps=3, checkpoint_dir=tmp_path, resume=True, **{**SMALL, "d_model": 8})
    other_sample = graph.clone()
    other_sample.gene_names = [*graph.gene_names[:-2], "g99", "blank1"]
    message = (
        r"cannot resume: gene_names: 12 saved, 12 now \(only saved \['g10'\], only now \['g99'\]\)$"
    )
    with pytest.raises(ValueError, match=message):
        pretrain(other_sample, steps=3, checkpoint_dir=tmp_path, resume=True, **SMALL)
    with pytest.raises(ValueError, match="needs checkpoint_dir"):
        pretrain(graph, steps=3, resume=True, **SMALL)


def test_resume_from_a_checkpoint_without_a_data_digest_says_it_predates_the_digest(tmp_path):
    # It was refused as "cannot resume on different training data", which is false:
    # the checkpoint was only written before the digest was recorded.
    graph = synthetic_graph()
    options = dict(steps=2, checkpoint_dir=tmp_path, **SMALL)
    pretrain(graph, **options)
    path = tmp_path / CHECKPOINT_NAME
    payload = checkpoint.read_checkpoint(path)
    del payload["training"]["metadata"]["data_digest"]
    torch.save(payload, path)
    message = (
        f"^{re.escape(str(path))} predates the data digest \\(data_digest\\) stgraph records in a checkpoint: "
        "its training data cannot be verified to be this graph's, so it is not resumed; train afresh "
        "\\(resume=False replaces it\\) or pass another checkpoint_dir$"
    )
    with pytest.raises(ValueError, match=message):
        pretrain(graph, resume=True, **options)
    # Other data differing too is other training data, as before.
    fewer_edges = graph.clone()
    fewer_edges.edge_index, fewer_edges.edge_dist = graph.edge_index[:, ::2], graph.edge_dist[::2]
    with pytest.raises(ValueError, match="^cannot resume on different training data: num_edges: "):
        pretrain(fewer_edges, resume=True, **options)


def test_resume_on_other_data_of_as_many_transcripts_is_refused(tmp_path):
    # The checkpoint recorded the number of transcripts only: the same graph with half
    # its edges (another max_num_neighbors or within) or with its transcripts moved
    # resumed, and trained on, silently.
    graph = synthetic_graph()
    options = dict(steps=2, checkpoint_dir=tmp_path, resume=True, **SMALL)
    pretrain(graph, **options)
    fewer_edges = graph.clone()
    fewer_edges.edge_index, fewer_edges.edge_dist = graph.edge_index[:, ::2], graph.edge_dist[::2]
    saved = pretrain(graph, **options).trainer.metadata
    assert saved["num_edges"] == graph.edge_index.size(1) == 2 * fewer_edges.edge_index.size(1)
    message = (
        f"^cannot resume on different training data: num_edges: saved {saved['num_edges']}, now "
        f"{fewer_edges.edge_index.size(1)}; data_digest: saved '{saved['data_digest']}', now "
        f"'{data_digest(fewer_edges)}'$"
    )
    with pytest.raises(ValueError, match=message):
        pretrain(fewer_edges, **options)
    moved = graph.clone()
    moved.pos = graph.pos + 0.01
    with pytest.raises(ValueError, match="^cannot resume on different training data: data_digest: saved "):
        pretrain(moved, **options)
    # The settings a model takes from the data are named with the data they come from.
    message = (
        "holds a model of another configuration; cannot resume: conv_kwargs: saved {'lambda_init': [1.0, 32.0]}, "
        "now {'lambda_init': [0.5, 16.0]} (and other training data: radius: saved 1.0, now 2.0)"
    )
    wider = graph.clone()
    wider.radius = 2.0
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        pretrain(wider, **options)


def test_the_data_digest_follows_every_field_training_reads():
    graph = synthetic_graph()
    reference = data_digest(graph)
    assert data_digest(graph.clone()) == reference and len(reference) == 32
    changed = []
    for field in ("gene", "pos", "edge_index", "cell", "is_control"):
        other = graph.clone()
        other[field] = other[field].flip(0)
        changed.append(data_digest(other) != reference)
    other = graph.clone()
    del other.cell
    changed.append(data_digest(other) != reference)
    other = graph.clone()
    other.pos = graph.pos.double()
    changed.append(data_digest(other) != reference)
    assert changed == [True] * 7


@pytest.mark.parametrize("resume", [True, False])
def test_pretrain_refuses_an_unusable_checkpoint_dir_up_front(tmp_path, monkeypatch, resume):
    # A file as checkpoint_dir was skipped by resume, and the run failed at its first save.
    graph = synthetic_graph()
    interrupt_at(monkeypatch, 0)  # training must not start
    file = tmp_path / "not_a_folder"
    file.write_text("x")
    message = f"^checkpoint_dir {re.escape(repr(str(file)))} is an existing file, not a folder$"
    with pytest.raises(ValueError, match=message):
        pretrain(graph, steps=1, checkpoint_dir=file, resume=resume, **SMALL)
    (tmp_path / "run" / CHECKPOINT_NAME).mkdir(parents=True)
    wanted = re.escape(repr(str(tmp_path / "run" / CHECKPOINT_NAME)))
    with pytest.raises(ValueError, match=f"^{wanted} is a folder, where the checkpoint file goes$"):
        pretrain(graph, steps=1, checkpoint_dir=tmp_path / "run", resume=resume, **SMALL)


def test_a_checkpoint_dir_that_cannot_be_written_is_refused_before_training(tmp_path, monkeypatch):
    # It failed at the first checkpoint, or at the end of training when there was none
    # before: a folder under a file raised NotADirectoryError, a full disk torch's
    # "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos".
    graph = synthetic_graph()
    size = pretrain(graph, steps=3, checkpoint_dir=tmp_path / "written", **SMALL).trainer.checkpoint_size()
    written = (tmp_path / "written" / CHECKPOINT_NAME).stat().st_size
    assert written < size < written + 2**20 + 2**16  # the estimate bounds the file, with 1 MiB to spare
    interrupt_at(monkeypatch, 0)  # training must not start
    file = tmp_path / "file"
    file.write_text("x")
    wanted = file / "run" / CHECKPOINT_NAME
    message = f"^cannot write the checkpoint {re.escape(str(wanted))}: \\[Errno 20\\] Not a directory: "
    with pytest.raises(OSError, match=message):
        pretrain(graph, steps=3, checkpoint_dir=file / "run", **SMALL)
    free = shutil.disk_usage(tmp_path)._replace(free=2**19)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda folder: free)
    message = (
        f"the checkpoint {tmp_path / 'run' / CHECKPOINT_NAME} needs about {size / 2**20:.1f} MiB, but its "
        "disk has 0.5 MiB free"
    )
    with pytest.raises(OSError, match=f"^{re.escape(message)}$"):
        pretrain(graph, steps=3, checkpoint_dir=tmp_path / "run", checkpoint_every=1, **SMALL)
    assert list((tmp_path / "run").iterdir()) == []


def test_a_checkpoint_that_cannot_be_written_leaves_the_previous_one(tmp_path, monkeypatch):
    graph = synthetic_graph()
    options = dict(steps=4, checkpoint_dir=tmp_path, checkpoint_every=2, **SMALL)
    uninterrupted = pretrain(graph, **{**options, "checkpoint_dir": tmp_path / "full"})
    save = torch.save

    def disk_full(payload, path):  # torch's writer on a full disk
        if payload["training"]["step"] == 4:
            Path(path).write_bytes(b"half a checkpoint")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1090304 vs 1090196")
        save(payload, path)

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    free = shutil.disk_usage(tmp_path)._replace(free=3 * 2**20)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda folder: free)
    saved = tmp_path / CHECKPOINT_NAME
    message = (
        f"could not write the checkpoint {saved} (3.0 MiB free on its disk; the "
        "previous checkpoint there, if any, is unchanged): [enforce fail at inline_container.cc:672] . "
        "unexpected pos 1090304 vs 1090196"
    )
    with pytest.raises(OSError, match=f"^{re.escape(message)}$"):
        pretrain(graph, **options)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [CHECKPOINT_NAME]  # no half-written file
    assert stgraph.models.read_checkpoint(saved)["training"]["step"] == 2
    monkeypatch.setattr(checkpoint.torch, "save", save)
    resumed = pretrain(graph, resume=True, **options)
    assert resumed.history == uninterrupted.history
    assert_same_weights(resumed.model, uninterrupted.model)


def test_the_default_layer_asked_for_explicitly_starts_from_the_same_ladder():
    # conv=SpatialTransformerConv or conv_kwargs={} skipped the ladder of distance penalties.
    graph = synthetic_graph()
    default = pretrain(graph, steps=2, **SMALL)
    assert default.model.encoder.config["conv_kwargs"] == dict(lambda_init=distance_penalty_ladder(graph.radius, 2))
    for explicit in (dict(conv=SpatialTransformerConv), dict(conv_kwargs={})):
        result = pretrain(graph, steps=2, **explicit, **SMALL)
        assert result.model.config == default.model.config, explicit
        assert result.history == default.history
        assert_same_weights(result.model, default.model)
    # Another argument of the layer keeps the ladder too.
    with_dropout = pretrain(graph, steps=2, conv=SpatialTransformerConv, conv_kwargs=dict(dropout=0.0), **SMALL)
    assert with_dropout.model.encoder.config["conv_kwargs"] == dict(
        lambda_init=distance_penalty_ladder(graph.radius, 2), dropout=0.0
    )
    assert with_dropout.history == default.history
    own = pretrain(graph, steps=1, conv_kwargs=dict(lambda_init=0.5), **SMALL)
    assert own.model.encoder.config["conv_kwargs"] == dict(lambda_init=0.5)


def test_held_out_cells_never_influence_training():
    graph = synthetic_graph()
    result = pretrain(graph, steps=3, held_out_cells=["c1"], **SMALL)
    assert result.held_out_cells == ["c1"]
    assert torch.equal(result.train_mask, graph.cell != 1)
    assert all((graph.cell[u.node] != 1).all() for u in result.trainer.units)

    altered = graph.clone()
    held = graph.cell == 1
    altered.gene = torch.where(held, (graph.gene + 5) % 11, graph.gene)
    other = pretrain(altered, steps=3, held_out_cells=["c1"], **SMALL)
    assert other.history == result.history
    assert_same_weights(other.model, result.model)

    drawn = pretrain(graph, steps=1, held_out_cells=2, seed=5, **SMALL)
    assert len(drawn.held_out_cells) == 2 and set(drawn.held_out_cells) <= {"c0", "c1", "c2"}


def test_held_out_cells_in_any_order_resume_the_same_run(tmp_path):
    # They were kept in the caller's order and saved so: a set, whose order changes
    # with each process's hash seed, made resume (and torch.distributed) refuse the
    # same cells as 'different training data'.
    graph = synthetic_graph()
    options = dict(steps=2, checkpoint_dir=tmp_path, **SMALL)
    first = pretrain(graph, held_out_cells=["c2", "c0"], **options)
    assert first.held_out_cells == ["c0", "c2"]
    assert first.trainer.metadata["held_out_cells"] == ["c0", "c2"]
    again = pretrain(graph, held_out_cells=("c0", "c2"), resume=True, **options)
    assert again.held_out_cells == ["c0", "c2"] and again.history == first.history


def test_a_drawn_count_of_held_out_cells_holds_out_transcripts():
    sdata = stgraph.datasets.simulate(6, 5, seed=0)[0]
    frame = stgraph.io.transcripts_frame(sdata)
    # A crop keeps the names (categories) of the six cells, three of which it cut away.
    crop = frame[frame["cell_id"].isin(["cell_0", "cell_1", "cell_2"])]
    graph = stgraph.graph.transcript_graph(crop, 1.5)
    assert len(graph.cell_names) == 6
    sizes = crop["cell_id"].value_counts()
    for seed in range(4):
        result = pretrain(graph, steps=1, held_out_cells=2, seed=seed, **SMALL)
        assert len(result.held_out_cells) == 2 and set(result.held_out_cells) <= {"cell_0", "cell_1", "cell_2"}
        assert int((~result.train_mask).sum()) == int(sizes[result.held_out_cells].sum()) > 0
    with pytest.raises(ValueError, match=r"held_out_cells=3 must be in \[0, 3\) for a graph of 3 cells with transcripts"):
        pretrain(graph, steps=1, held_out_cells=3, **SMALL)
    # Without cells, holding out none failed: "held_out_cells=0 must be in [0, 0)".
    without_cells = stgraph.graph.transcript_graph(frame.drop(columns="cell_id"), 1.5)
    result = pretrain(without_cells, steps=1, held_out_cells=0, **SMALL)
    assert result.held_out_cells == [] and bool(result.train_mask.all())


@pytest.mark.parametrize(
    "settings, error, message",
    [
        # a string failed in a comparison: "'>' not supported between instances of 'str' and 'int'"
        (dict(lr="1e-3"), TypeError, r"^lr must be a real number, got str$"),
        (dict(steps="1"), TypeError, r"^steps must be an integer, got '1'$"),
        (dict(mask_rate="x"), TypeError, r"^mask_rate must be a real number, got str$"),
        # these were accepted: fractional counts, a negative seed, an infinite rate
        (dict(steps=1.5), TypeError, r"^steps must be an integer, got 1.5$"),
        (dict(batch_size=1.5), TypeError, r"^batch_size must be an integer, got 1.5$"),
        (dict(seed=-1), ValueError, r"^seed must be an integer >= 0, got -1$"),
        (dict(lr=float("inf")), ValueError, r"^lr must be a positive finite number, got inf$"),
        (dict(grad_clip=float("nan")), ValueError, r"^grad_clip must be a positive finite number, got nan$"),
        # accepted: the rate rose to a tenth of lr and the cosine decay never came
        (dict(steps=10, warmup_steps=100), ValueError,
         r"^warmup_steps=100 exceeds steps=10: training would end during the warm-up, the learning rate "
         r"never reaching lr$"),
    ],
)
def test_training_config_names_the_setting_at_fault(settings, error, message):
    with pytest.raises(error, match=message):
        TrainingConfig(**{"steps": 1, **settings})
    assert TrainingConfig(steps=np.int64(2), lr=np.float32(0.5), seed=np.int64(3)).seed == 3

def test_holding_out_every_transcript_is_refused_by_name():
    graph = synthetic_graph()
    graph.cell = graph.cell.clamp(min=0)  # every transcript in a cell
    # It said "every training transcript is a control probe", which none was.
    message = "^held_out_cells holds out all 3 cells and no transcript is outside them: none is left to train on$"
    with pytest.raises(ValueError, match=message):
        pretrain(graph, steps=1, held_out_cells=["c0", "c1", "c2"], **SMALL)


def test_tiles_far_smaller_than_the_halo_are_refused():
    # A halo of n_layers * radius = 2 µm around tiles of 0.2 µm: 23 x 23 tiles per unit
    # (tile_size=1e-6 ran for ever).
    with pytest.raises(ValueError, match=r"^tile_size=0.2 is too small for halo=2.0: each unit would gather"):
        pretrain(synthetic_graph(), steps=1, **{**SMALL, "tile_size": 0.2})


def test_pretrain_rejects_bad_arguments():
    graph = synthetic_graph()
    with pytest.raises(ValueError, match="not in the graph"):
        pretrain(graph, steps=1, held_out_cells=["nope"], **SMALL)
    with pytest.raises(ValueError, match="must be in \\[0, 3\\)"):
        pretrain(graph, steps=1, held_out_cells=3, **SMALL)
    with pytest.raises(TypeError, match="not a string"):
        pretrain(graph, steps=1, held_out_cells="c0", **SMALL)
    for flag in (True, 1.0):
        with pytest.raises(TypeError, match=f"held_out_cells must be a count \\(int\\) .*, got {flag}"):
            pretrain(graph, steps=1, held_out_cells=flag, **SMALL)
    with pytest.raises(ValueError, match=r"held_out_cells names some cells more than once: \['c0'\]"):
        pretrain(graph, steps=1, held_out_cells=["c0", "c1", "c0"], **SMALL)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        pretrain(graph, **{**SMALL, "batch_size": 0})
    for n_layers, error, wanted in ((-1, ValueError, "a positive integer"), (0, ValueError, "a positive integer"),
                                    (True, TypeError, "an integer")):
        with pytest.raises(error, match=f"n_layers must be {wanted}, got {n_layers}"):
            pretrain(graph, steps=1, **{**SMALL, "n_layers": n_layers})
    with pytest.raises(ValueError, match="batch_by"):
        pretrain(graph, steps=1, batch_by="spot", **SMALL)
    with pytest.raises(ValueError, match="differs from the graph's radius"):
        pretrain(graph, radius=2.0, steps=1, **SMALL)
    with pytest.raises(ValueError, match="unknown device"):
        pretrain(graph, steps=1, **{**SMALL, "device": "tpu"})
    with pytest.raises(ValueError, match="mask_rate"):
        pretrain(graph, steps=1, mask_rate=0.0, **SMALL)
    with pytest.raises(ValueError, match="grad_clip"):
        pretrain(graph, steps=1, grad_clip=-1.0, **SMALL)
    with pytest.raises(ValueError, match="d_model=15 must be a multiple of heads=2"):
        pretrain(graph, steps=1, **{**SMALL, "d_model": 15})
    # epochs=1.5 trained 1.5 epochs' worth of steps and epochs=True one epoch; a negative
    # count failed with TrainingConfig's "steps and warmup_steps must be >= 0".
    for name, value, error, wanted in (("epochs", 1.5, TypeError, "an integer"), ("epochs", True, TypeError, "an integer"),
                                       ("epochs", -1, ValueError, "an integer >= 0"),
                                       ("steps", 2.5, TypeError, "an integer"),
                                       ("warmup_steps", -3, ValueError, "an integer >= 0")):
        with pytest.raises(error, match=f"^{name} must be {wanted}, got {value}$"):
            pretrain(graph, **{**SMALL, name: value})
    # Strings are true whatever they say: progress="False" showed the bar.
    for flag in ("resume", "progress"):
        with pytest.raises(TypeError, match=rf"^{flag} must be a bool \(True or False\), got 'False'$"):
            pretrain(graph, steps=1, **{**SMALL, flag: "False"})
    # The rule is the default layer's: a layer without per-head channels takes any d_model.
    from tests.test_encoder import DistanceWeightedMean

    own_layer = pretrain(graph, steps=1, conv=DistanceWeightedMean, **{**SMALL, "d_model": 15})
    assert own_layer.model.encoder.config["d_model"] == 15
    with pytest.raises(ValueError, match="heads must be a positive integer, got 0"):
        pretrain(graph, steps=1, **{**SMALL, "heads": 0})
    for seed, error, wanted in ((-1, ValueError, "an integer >= 0"), (0.5, TypeError, "an integer"),
                                ("7", TypeError, "an integer")):
        with pytest.raises(error, match=f"^seed must be {wanted}, got {seed!r}$"):
            pretrain(graph, steps=1, seed=seed, **SMALL)
    with pytest.raises(ValueError, match="checkpoint_every=1 needs checkpoint_dir"):
        pretrain(graph, steps=1, checkpoint_every=1, **SMALL)
    # "'list' object is not a mapping" and pathlib's "expected str, bytes or os.PathLike object" named no argument
    with pytest.raises(TypeError, match=r"^conv_kwargs must be a dict of keyword arguments of the layer, or None, got list$"):
        pretrain(graph, steps=1, conv_kwargs=[1], **SMALL)
    with pytest.raises(TypeError, match=r"^checkpoint_dir must be a path \(a string or os.PathLike\), got int$"):
        pretrain(graph, steps=1, checkpoint_dir=5, **SMALL)
    broken = graph.clone()
    broken.pos = graph.pos.clone()
    broken.pos[0, 1] = float("inf")
    for batch_by in ("tile", "cell"):  # the loss was NaN at every step
        with pytest.raises(ValueError, match="NaN or infinite coordinates"):
            pretrain(broken, steps=1, batch_by=batch_by, **SMALL)
    no_names = graph.clone()
    del no_names.gene_names
    with pytest.raises(ValueError, match="'gene_names'"):
        pretrain(no_names, steps=1, **SMALL)
    # Only control probes: refused before a model is built (it failed inside the masking).
    controls = graph.clone()
    controls.is_control = torch.ones(graph.num_nodes, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"every training transcript is a control probe"):
        pretrain(controls, steps=1, **SMALL)


def test_data_without_anything_to_learn_are_refused():
    # Each trained to the end: one gene (besides the controls) at a loss of exactly 0,
    # a radius without edges on the genes' frequencies alone.
    graph = synthetic_graph()
    one_gene = graph.clone()
    one_gene.gene = torch.where(graph.is_control, graph.gene, 3)
    message = (
        "the training transcripts hold one gene ('g3') that is not a control probe: masked gene modelling "
        "needs at least two to tell apart"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pretrain(one_gene, steps=1, **SMALL)
    # ... also where the other genes are all in held-out cells.
    in_c0 = graph.cell == 0
    one_trained = graph.clone()
    one_trained.gene = torch.where(in_c0 | graph.is_control, graph.gene, 3)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pretrain(one_trained, steps=1, held_out_cells=["c0"], **SMALL)
    pretrain(one_trained, steps=1, **SMALL)  # with c0 in training, its genes are targets
    isolated = graph.clone()
    isolated.edge_index, isolated.edge_dist = graph.edge_index[:, :0], graph.edge_dist[:0]
    pos = graph.pos.double().numpy()
    nearest = np.median(np.sort(np.linalg.norm(pos[:, None] - pos[None], axis=-1), axis=1)[:, 1])
    message = (
        "no two training transcripts are within radius=1 µm of each other: every transcript would see only "
        "itself, and the model could learn the genes' frequencies only; use a larger radius (median distance "
        f"of a training transcript to its nearest: {nearest:.3g} µm)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pretrain(isolated, steps=1, **SMALL)
    # Within cells: edges between unassigned transcripts only.
    outside = graph.clone()
    source, target = graph.edge_index
    keep = (graph.cell[source] < 0) & (graph.cell[target] < 0)
    assert 0 < int(keep.sum()) < keep.numel()
    outside.edge_index, outside.edge_dist = graph.edge_index[:, keep], graph.edge_dist[keep]
    with pytest.raises(ValueError, match="^no two training transcripts in a cell are within radius=1 µm"):
        pretrain(outside, steps=1, batch_by="cell", **SMALL)
    pretrain(outside, steps=1, **SMALL)  # tiles hold the unassigned transcripts too
    unassigned = graph.clone()
    unassigned.cell = torch.full_like(graph.cell, -1)
    message = (
        "batch_by='cell', but no training transcript is assigned to a cell (cell_id missing or all NaN): use "
        "batch_by='tile'"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pretrain(unassigned, steps=1, batch_by="cell", **SMALL)


def test_graph_building_options_a_given_graph_would_ignore_are_refused():
    # With a graph as data, within and max_num_neighbors were ignored silently:
    # within='cell' trained along edges across cells, within='cel' was accepted.
    graph = synthetic_graph()
    across = "^within='cell', but the graph given as data has edges across cells or between unassigned"
    with pytest.raises(ValueError, match=across):
        pretrain(graph, steps=1, within="cell", **SMALL)
    with pytest.raises(ValueError, match=r"^within must be 'all' or 'cell', got 'cel'$"):
        pretrain(graph, steps=1, within="cel", **SMALL)
    message = "^max_num_neighbors=4 applies when building the graph; the graph given as data is used as built$"
    with pytest.raises(ValueError, match=message):
        pretrain(graph, steps=1, max_num_neighbors=4, **SMALL)
    source, target = graph.edge_index
    within_cells = (graph.cell[source] == graph.cell[target]) & (graph.cell[target] >= 0)
    cell_graph = graph.clone()
    cell_graph.edge_index, cell_graph.edge_dist = graph.edge_index[:, within_cells], graph.edge_dist[within_cells]
    assert len(pretrain(cell_graph, steps=1, within="cell", **SMALL).history) == 1


def test_device_selection():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_device_selection_refuses_devices_the_code_cannot_use(monkeypatch):
    # 'cuda:5' on a one-GPU machine, and 'mps' or 'meta', were taken, and training then
    # failed deep inside torch.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=re.escape("device 'cuda:5': this machine has 1 CUDA device(s), cuda:0 to cuda:0")):
        resolve_device("cuda:5")
    for device in ("mps", "meta", torch.device("meta")):
        with pytest.raises(ValueError, match=re.escape(
            f"device '{torch.device(device)}' is not supported; use 'cpu', 'cuda' (or 'cuda:N') or 'auto'"
        )):
            resolve_device(device)


def test_gradient_clipping_bounds_the_update_gradients():
    graph = synthetic_graph()
    norms: dict[float | None, list[float]] = {}
    for clip in (None, 0.05):
        trainer = _trainer(graph, TrainingConfig(steps=3, batch_size=2, grad_clip=clip), 0)
        seen = norms.setdefault(clip, [])
        trainer.optimizer.register_step_pre_hook(
            lambda opt, args, kwargs, seen=seen: seen.append(
                float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for g in opt.param_groups for p in g["params"] if p.grad is not None])))
            )
        )
        trainer.fit(progress=False)
    assert min(norms[None]) > 0.05
    assert max(norms[0.05]) <= 0.05 * (1 + 1e-5)


def test_batches_cover_every_unit_once_per_epoch():
    steps_per_epoch = 3
    first_epoch = [u for s in range(steps_per_epoch) for u in batch_indices(7, s, 3, seed=2)]
    assert sorted(first_epoch) == list(range(7))
    assert first_epoch == epoch_order(7, 0, 2).tolist()
    assert [len(batch_indices(7, s, 3, seed=2)) for s in range(4)] == [3, 3, 1, 3]
    assert batch_indices(7, 4, 3, seed=2) == batch_indices(7, 4, 3, seed=2)
    assert epoch_order(7, 1, 2).tolist() != epoch_order(7, 0, 2).tolist()
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        batch_indices(7, 0, 0, seed=0)
    with pytest.raises(ValueError, match="no units"):
        batch_indices(0, 0, 3, seed=0)
    # These failed inside numpy (AxisError, "expected non-negative integer", "seed must be integer").
    for args, error, message in (
        ((2.5, 0, 2, 0), TypeError, "n_units must be an integer, got 2.5"),
        ((7, -1, 2, 0), ValueError, "step must be an integer >= 0, got -1"),
        ((7, 1.5, 2, 0), TypeError, "step must be an integer, got 1.5"),
        ((7, 0, 2, -1), ValueError, "seed must be an integer >= 0, got -1"),
    ):
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            batch_indices(*args)


# --- evaluation --------------------------------------------------------------------------


def test_evaluation_groups_are_balanced():
    groups = evaluation_groups(1000, 0.15, seed=0)
    counts = torch.bincount(groups)
    assert counts.numel() == 7 and counts.max() - counts.min() <= 1
    assert torch.equal(groups, evaluation_groups(1000, 0.15, seed=0))


def test_neighbour_baseline_by_hand():
    # Node 0 has neighbours 1 (gene 2), 2 (gene 2), 3 (gene 1) and 4 (gene 1, hidden with 0);
    # node 1 has neighbour 0 (gene 1).
    edge_index = torch.tensor([[1, 2, 3, 4, 0], [0, 0, 0, 0, 1]])
    edge_dist = torch.tensor([0.5, 0.2, 0.1, 0.05, 0.5])
    graph = Data(gene=torch.tensor([1, 2, 2, 1, 1]), edge_index=edge_index, edge_dist=edge_dist, num_nodes=5)
    groups = torch.tensor([0, 1, 1, 1, 0])
    allowed = torch.ones(5, dtype=torch.bool)
    counts = visible_neighbour_counts(graph, groups, torch.tensor([0, 1]), allowed, 3)
    assert counts.is_sparse and counts.to_dense().tolist() == [[0, 1, 2], [0, 1, 0]]
    prior = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    scores = score_neighbours(counts, torch.tensor([1, 1]), prior, strength=2.0)
    # p_0(1) = (1 + 2 * 0.3) / (3 + 2); p_1(1) = (1 + 0.6) / (1 + 2).
    assert torch.allclose(scores.log_prob, torch.log(torch.tensor([1.6 / 5, 1.6 / 3], dtype=torch.float64)))
    assert scores.correct.tolist() == [False, True]  # node 0: majority gene 2
    tie = score_neighbours(torch.tensor([[1, 1, 0]]).to_sparse(), torch.tensor([0]), prior, 1.0)
    assert tie.correct.tolist() == [True]  # tie between genes 0 and 1 broken by the prior
    # An exact tie (equal priors) goes to the lowest gene; no visible neighbour: the top prior gene.
    even = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    exact = score_neighbours(torch.tensor([[0, 2, 2], [0, 0, 0]]).to_sparse(), torch.tensor([1, 0]), even, 1.0)
    assert exact.correct.tolist() == [True, True]
    none = score_neighbours(torch.tensor([[0, 0, 0]]).to_sparse(), torch.tensor([0]), prior, 1.0)
    assert none.correct.tolist() == [True] and torch.allclose(none.log_prob, torch.log(prior[:1]))
    not_allowed = visible_neighbour_counts(graph, groups, torch.tensor([0]), allowed & (torch.arange(5) != 1), 3)
    assert not_allowed.to_dense().tolist() == [[0, 1, 1]]
    # Nearest visible: node 3 for node 0 (node 4 is hidden), node 0 for node 1; node 4 has none.
    nearest = nearest_visible_gene(graph, groups, torch.tensor([0, 1, 4]), allowed, fallback=0)
    assert nearest.tolist() == [1, 1, 0]
    without_3 = nearest_visible_gene(graph, groups, torch.tensor([0]), torch.arange(5) != 3, fallback=0)
    assert without_3.tolist() == [2]


def test_neighbour_baseline_equals_its_dense_definition():
    # The sparse scoring against the module docstring's formulas on dense counts,
    # with tied prior genes so that the argmax's tie rule matters.
    gen = torch.Generator().manual_seed(0)
    dense = (torch.rand(2000, 40, generator=gen) < 0.05).long() * torch.randint(1, 4, (2000, 40), generator=gen)
    target = torch.randint(0, 40, (2000,), generator=gen)
    prior = torch.rand(40, generator=gen, dtype=torch.float64)
    prior[[3, 5]] = prior.max()
    prior /= prior.sum()
    scores = score_neighbours(dense.to_sparse(), target, prior, 0.3)
    counts = dense.double()
    expected = torch.log(counts.gather(1, target[:, None]).squeeze(1) + 0.3 * prior[target]) - torch.log(
        counts.sum(1) + 0.3
    )
    assert torch.equal(scores.log_prob, expected)
    assert torch.equal(scores.correct, (dense + prior / 2).argmax(1) == target)


def control_paired_graph() -> Data:
    """A training cell of genes g0 / g1 and a held-out cell where each g0 molecule has one
    neighbour, a control probe 0.05 µm away, and nothing else within the radius."""
    rng = np.random.default_rng(0)
    train_pos = rng.uniform(0, 5, size=(60, 2))
    train_gene = (np.arange(60) % 3 == 0).astype(np.int64)  # 40 g0, 20 g1
    centres = np.stack([10.0 + 2.0 * (np.arange(20) % 5), 2.0 * (np.arange(20) // 5)], axis=1)
    pos = np.concatenate([train_pos, centres, centres + [0.05, 0.0]])
    gene = np.concatenate([train_gene, np.zeros(20, dtype=np.int64), np.full(20, 2)])
    pos_t = torch.tensor(pos, dtype=torch.float32)
    edge_index, edge_dist = radius_graph(pos_t, 0.6, return_distance=True)
    return Data(
        gene=torch.tensor(gene), pos=pos_t, edge_index=edge_index, edge_dist=edge_dist,
        cell=torch.tensor([0] * 60 + [1] * 40), is_control=torch.tensor(gene == 2),
        gene_names=["g0", "g1", "ctrl"], cell_names=["left", "right"], radius=0.6,
    )


def test_evaluation_never_hides_a_control():
    # Training never masks a control probe; evaluation hid about 1 in 7 of them, so some
    # g0 molecules were scored with no visible neighbour at all.
    graph = control_paired_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(3, 8, 1, 2), graph.gene_names, ["ctrl"])
    # With seed 2, three g0 molecules share their control's mask group.
    report = evaluate_held_out(model, graph, graph.cell == 0, tile_size=5.0, seed=2)
    assert report["model"]["n"] == report["radius_neighbours"]["n"] == 20
    # Every g0 target sees exactly its control: neighbour counts (0 g0, 0 g1, 1 ctrl).
    beta, prior_g0 = report["neighbour_strength"]["beta"], 41 / 62
    assert report["radius_neighbours"]["cross_entropy"] == pytest.approx(-math.log(beta * prior_g0 / (1 + beta)), rel=1e-12)
    assert report["radius_neighbours"]["accuracy"] == 0.0  # the control is the most frequent visible gene
    assert report["nearest_neighbour_reference"]["accuracy"] == 0.0


def test_a_control_seen_only_in_held_out_cells_is_a_control():
    graph = control_paired_graph()
    result = pretrain(graph, steps=1, held_out_cells=["right"], seed=0, **SMALL)
    assert result.model.control_genes == ["ctrl"]
    assert result.model.is_control_gene.tolist() == [False, False, True]


def test_gene_prior_and_frequency_baseline():
    control = torch.tensor([False, False, True])
    prior = gene_prior(torch.tensor([0, 0, 0, 1]), control)
    assert torch.allclose(prior, torch.tensor([4 / 6, 2 / 6, 0.0], dtype=torch.float64))
    scores = score_frequency(prior, torch.tensor([0, 1]))
    assert scores.correct.tolist() == [True, False]
    assert scores.cross_entropy == pytest.approx(-(np.log(4 / 6) + np.log(2 / 6)) / 2)
    counts = torch.tensor([[5, 0, 0], [0, 5, 0]]).to_sparse()
    assert fit_neighbour_strength(counts, torch.tensor([0, 1]), prior, grid=(0.1, 10.0)) == 0.1


def duplicated_graph(n_molecules: int = 400, seed: int = 0) -> Data:
    """Molecules of 10 genes, each seen twice 0.05 µm apart, in two cells: the
    gene of a masked transcript is that of its nearest neighbour."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 12, size=(n_molecules, 2))
    pos = np.concatenate([centre, centre + rng.normal(0, 0.05 / np.sqrt(2), size=centre.shape)])
    gene = np.tile(rng.integers(0, 10, n_molecules), 2)
    pos_t = torch.tensor(pos, dtype=torch.float32)
    edge_index, edge_dist = radius_graph(pos_t, 0.6, return_distance=True)
    return Data(
        gene=torch.tensor(gene), pos=pos_t, edge_index=edge_index, edge_dist=edge_dist,
        cell=torch.tensor((pos[:, 0] > 6).astype(np.int64)), is_control=torch.zeros(len(gene), dtype=torch.bool),
        gene_names=[f"g{k}" for k in range(10)], cell_names=["left", "right"], radius=0.6,
    )


def test_model_learns_planted_duplicates_and_beats_baselines():
    graph = duplicated_graph()
    result = pretrain(
        graph, steps=60, lr=5e-3, held_out_cells=["right"], seed=0,
        **{**SMALL, "batch_size": 4, "tile_size": 4.0},
    )
    assert np.mean(result.history[-10:]) < np.mean(result.history[:10])
    report = evaluate_held_out(result.model, graph, result.train_mask, tile_size=4.0)
    n = int(((graph.cell == 1)).sum())
    assert {report[k]["n"] for k in ("model", "gene_frequency", "radius_neighbours")} == {n}
    assert report["model"]["accuracy"] > report["radius_neighbours"]["accuracy"] + 0.1
    assert report["model"]["cross_entropy"] < report["radius_neighbours"]["cross_entropy"]
    assert report["model"]["accuracy"] > report["gene_frequency"]["accuracy"]
    assert report["nearest_neighbour_reference"]["n"] == n


def test_evaluate_held_out_leaves_the_model_as_it_was():
    graph = synthetic_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2, dropout=0.1), graph.gene_names)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for training in (True, False):
        model.train(training)
        report = evaluate_held_out(model, graph, graph.cell != 1, tile_size=5.0)
        assert report["model"]["n"] == int((graph.cell == 1).sum())
        assert model.training is training and all(m.training is training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_evaluate_held_out_checks_the_train_mask():
    graph = synthetic_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names)
    n = graph.num_nodes
    for bad, got in (
        ((graph.cell != 1)[:10], "torch.bool of shape \\(10,\\)"),
        ((graph.cell != 1).long(), f"torch.int64 of shape \\({n},\\)"),
        ([True] * n, "list"),
    ):
        with pytest.raises(ValueError, match=f"train_mask must be a bool tensor of shape \\[{n}\\].*got {got}"):
            evaluate_held_out(model, graph, bad)


def test_evaluate_held_out_checks_its_counts_and_seed_up_front():
    # seed=-1 and 1.5 failed in numpy; max_fit_nodes=0 chose beta from no transcript (0.01, from NaN losses).
    graph = synthetic_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names)
    for options, error, message in (
        (dict(seed=-1), ValueError, "^seed must be an integer >= 0, got -1$"),
        (dict(seed=1.5), TypeError, "^seed must be an integer, got 1.5$"),
        (dict(max_fit_nodes=0), ValueError, "^max_fit_nodes must be a positive integer, got 0$"),
        (dict(batch_size=2.0), TypeError, "^batch_size must be an integer, got 2.0$"),
    ):
        with pytest.raises(error, match=message):
            evaluate_held_out(model, graph, graph.cell != 1, tile_size=5.0, **options)


def test_evaluate_held_out_checks_the_model_rate_and_device_up_front():
    # rate="0.15" failed with "'<' not supported", device="tpu" with torch's list of device
    # types, "cuda" without CUDA with an AssertionError, an encoder with an AttributeError.
    graph = synthetic_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names)
    for options, error, message in (
        (dict(rate="0.15"), TypeError, "^rate must be a real number, got str$"),
        (dict(rate=1.5), ValueError, r"^rate must be in \(0, 1\], got 1.5$"),
        (dict(device="tpu"), ValueError, "^unknown device 'tpu'; use 'cpu', 'cuda' or 'auto'$"),
        (dict(model=model.encoder), TypeError,
         r"^model must be a stgraph.models.MaskedGeneModel \(tl.pretrain\(...\).model, or "
         r"stgraph.models.load_model\(path\)\), got TranscriptEncoder$"),
    ):
        with pytest.raises(error, match=message):
            evaluate_held_out(**{"model": model, "graph": graph, "train_mask": graph.cell != 1, **options})


def test_evaluate_held_out_needs_training_transcripts_for_its_baselines():
    # With every transcript held out (or only controls left for training) the baselines were
    # fitted on nothing: a uniform gene prior and beta=0.01 chosen among NaN losses.
    graph = synthetic_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names, ["blank1"])
    message = (
        r"^train_mask selects no training transcript \(other than control probes\): the gene-frequency "
        r"and radius-neighbour baselines are fitted on them; keep some transcripts in train_mask$"
    )
    for train_mask in (torch.zeros(graph.num_nodes, dtype=torch.bool), graph.is_control.clone()):
        with pytest.raises(ValueError, match=message):
            evaluate_held_out(model, graph, train_mask, tile_size=5.0)


def test_evaluate_held_out_names_the_graph_fields_it_lacks():
    # A graph without edge_dist failed with PyG's AttributeError once the model had scored it.
    graph = synthetic_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names)
    train_mask = graph.cell != 1
    del graph.edge_dist
    message = r"^graph lacks the field\(s\) \['edge_dist'\]; build it with stgraph.graph.transcript_graph$"
    with pytest.raises(ValueError, match=message):
        evaluate_held_out(model, graph, train_mask, tile_size=5.0)
    del graph.pos, graph.edge_index
    message = r"^graph lacks the field\(s\) \['pos', 'edge_index', 'edge_dist'\]; build it with "
    with pytest.raises(ValueError, match=message):
        evaluate_held_out(model, graph, train_mask, tile_size=5.0)
    with pytest.raises(TypeError, match=r"^graph must be a torch_geometric Data .*got dict$"):
        evaluate_held_out(model, {"gene": graph.gene}, train_mask, tile_size=5.0)


def test_evaluate_held_out_needs_the_graph_radius():
    # Without it the halo computation raised AttributeError from PyG's storage.
    graph = synthetic_graph()
    torch.manual_seed(0)
    model = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names)
    del graph.radius
    message = (
        r"^the graph has no 'radius' field: evaluate_held_out needs it for the context "
        r"halo \(n_layers \* radius µm\) of the tiles the model scores$"
    )
    with pytest.raises(ValueError, match=message):
        evaluate_held_out(model, graph, graph.cell != 1, tile_size=5.0)
    graph.radius = 0.0
    with pytest.raises(ValueError, match=r"^graph.radius must be a positive finite number, got 0.0$"):
        evaluate_held_out(model, graph, graph.cell != 1, tile_size=5.0)


def test_batching_by_cell_trains_on_assigned_transcripts_only():
    graph = synthetic_graph()
    result = pretrain(graph, steps=2, batch_by="cell", held_out_cells=["c2"], **SMALL)
    units = result.trainer.units
    assert sorted(int(u.cell.unique()) for u in units) == [0, 1]
    assert all(u.core.all() for u in units)
    assert sum(u.num_nodes for u in units) == int(((graph.cell == 0) | (graph.cell == 1)).sum())
    assert result.trainer.config.steps == 2 and len(result.history) == 2
    by_epochs = pretrain(graph, epochs=3, batch_by="cell", **{**SMALL, "batch_size": 2})
    assert by_epochs.trainer.config.steps == 3 * 2  # three cells in batches of two


def test_pretrain_from_spatialdata_builds_the_transcript_graph():
    sdata, _ = stgraph.datasets.simulate(n_cells=3, n_genes=8, mean_counts=15, cell_radius=(5.0, 7.0), seed=0)
    result = pretrain(sdata, radius=1.0, steps=2, held_out_cells=1, seed=1, **SMALL)
    graph = result.graph
    expected = stgraph.graph.transcript_graph(sdata, 1.0)
    for key in ("gene", "pos", "edge_index", "edge_dist", "cell"):
        assert torch.equal(graph[key], expected[key])
    assert result.model.gene_names == expected.gene_names
    assert len(result.held_out_cells) == 1 and result.held_out_cells[0] in expected.cell_names
    with pytest.raises(ValueError, match="radius= \\(µm\\) is required"):
        pretrain(sdata, steps=1, **SMALL)


def test_pretrain_on_3d_coordinates_with_the_default_width():
    # 64 is not a multiple of 2 * 3: the positional encoding zero-pads its last channels.
    graph = synthetic_graph(n=200)
    z = torch.tensor(np.random.default_rng(1).uniform(0.0, 3.0, size=(200, 1)), dtype=torch.float32)
    graph.pos = torch.cat([graph.pos, z], dim=1)
    graph.edge_index, graph.edge_dist = radius_graph(graph.pos, 1.0, return_distance=True)
    small = {**SMALL, "d_model": 64}
    result = pretrain(graph, steps=2, held_out_cells=1, seed=0, **small)
    assert result.model.encoder.n_dims == 3
    assert len(result.history) == 2 and all(np.isfinite(result.history))


def other_radius_message(trained: float, radius: float, graph_name: str = "the graph", alternative: str = "") -> str:
    """The warning of a model pretrained at ``trained`` applied to a graph of ``radius``, as a regex."""
    return "^" + re.escape(
        f"the model was pretrained on a graph of radius {trained:g} µm, but {graph_name} has radius {radius:g} µm: "
        "its distance penalties and the contexts it learned are of its own radius; build "
        f"{graph_name} with radius={trained:g}{alternative}, or pretrain the model at radius={radius:g}"
    ) + "$"


def test_the_training_radius_is_recorded_and_saved(tmp_path):
    # A model kept no trace of the radius it learned: applied at another one, nothing said so.
    graph = synthetic_graph(radius=1.5)
    model = pretrain(graph, steps=1, **SMALL).model
    assert model.radius == 1.5 and model.config["radius"] == 1.5
    assert checkpoint.load_model(checkpoint.save_checkpoint(tmp_path / "m.pt", model)).radius == 1.5
    by_hand = MaskedGeneModel(TranscriptEncoder(len(graph.gene_names), 8, 1, 2), graph.gene_names)
    assert by_hand.radius is None
    assert checkpoint.load_model(checkpoint.save_checkpoint(tmp_path / "h.pt", by_hand)).radius is None
    assert MaskedGeneModel.from_config({**model.config, "radius": 2}).radius == 2.0
    with pytest.raises(ValueError, match="^radius must be a positive finite number, got -1.0$"):
        MaskedGeneModel(TranscriptEncoder(3, 8, 1, 2), ["a", "b", "c"], radius=-1)
    with pytest.raises(TypeError, match="^radius must be a real number, got str$"):
        MaskedGeneModel(TranscriptEncoder(3, 8, 1, 2), ["a", "b", "c"], radius="1")


def test_evaluate_held_out_warns_of_a_model_of_another_radius():
    graph = synthetic_graph()
    model = pretrain(graph, steps=1, **SMALL).model
    held_out = graph.cell != 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        same = evaluate_held_out(model, graph, held_out, tile_size=5.0)
        # Float rounding of the radius is the same radius.
        evaluate_held_out(model, graph.clone().update(dict(radius=1.0 + 1e-9)), held_out, tile_size=5.0)
    wider = synthetic_graph(radius=2.0)
    with pytest.warns(UserWarning, match=other_radius_message(1.0, 2.0)) as caught:
        report = evaluate_held_out(model, wider, held_out, tile_size=5.0)
    assert len([w for w in caught if "pretrained on a graph of radius" in str(w.message)]) == 1
    assert report["model"]["n"] == same["model"]["n"]


def test_a_checkpoint_without_a_radius_loads_resumes_and_warns_nothing(tmp_path):
    # Checkpoints written before the radius was recorded hold no 'radius' in model_config.
    graph = synthetic_graph()
    options = dict(steps=3, checkpoint_dir=tmp_path, **SMALL)
    first = pretrain(graph, **options)
    path = tmp_path / CHECKPOINT_NAME
    payload = checkpoint.read_checkpoint(path)
    del payload["model_config"]["radius"]
    torch.save(payload, path)
    old = checkpoint.load_model(path)
    assert old.radius is None
    assert_same_weights(old, first.model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        evaluate_held_out(old, synthetic_graph(radius=2.0), graph.cell != 1, tile_size=5.0)
    # Resuming it is not refused as a model of another configuration; the result records the radius.
    again = pretrain(graph, resume=True, **options)
    assert again.trainer.step == 3 and again.model.radius == 1.0
    assert_same_weights(again.model, first.model)
