"""A layer of the user's own module: checkpoints and exact resume in a new Python process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from stgraph.models import load_model
from stgraph.tl import pretrain
from tests.test_encoder import synthetic_graph
from tests.test_pretrain import Interrupted, assert_same_weights_as, interrupt_at

#: The user's module: a distance-gated mean that returns its weights as ``alpha [E]``.
USER_MODULE = '''
import torch
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax


class GatedMean(MessagePassing):
    def __init__(self, d_model, heads):
        super().__init__(aggr="add")
        self.lin = torch.nn.Linear(d_model, d_model)
        self.rate = torch.nn.Parameter(torch.ones(1))

    def reset_parameters(self):
        self.lin.reset_parameters()
        torch.nn.init.ones_(self.rate)

    def forward(self, x, edge_index, edge_dist, return_attention_weights=False):
        alpha = softmax(-self.rate.abs() * edge_dist, edge_index[1], num_nodes=x.size(0))
        out = self.propagate(edge_index, x=self.lin(x), alpha=alpha)
        return (out, (edge_index, alpha)) if return_attention_weights else out

    def message(self, x_j, alpha):
        return alpha[:, None] * x_j
'''

#: What the new process does: load without the module on sys.path, then with it, and resume.
NEW_PROCESS = '''
import json, sys
import torch
from stgraph.models import load_model
from stgraph.tl import pretrain

folder, options = sys.argv[1], json.loads(sys.argv[2])
try:
    load_model(folder + "/run/masked_gene_model.pt")
    refused = None
except ValueError as err:
    refused = str(err)
sys.path.insert(0, folder)
import userlayers

graph = torch.load(folder + "/graph.pt", weights_only=False)
model = load_model(folder + "/run/masked_gene_model.pt")
torch.save(model(graph), folder + "/logits.pt")
resumed = pretrain(graph, conv=userlayers.GatedMean, checkpoint_dir=folder + "/run", resume=True, **options)
torch.save(resumed.model.state_dict(), folder + "/resumed.pt")
print(json.dumps(dict(refused=refused, layer=type(model.encoder.layers[0].conv).__module__,
                      history=resumed.history)))
'''

OPTIONS = dict(steps=5, d_model=16, n_layers=2, heads=2, tile_size=5.0, batch_size=2, dropout=0.2,
               seed=4, progress=False, device="cpu")


def test_a_user_layer_loads_and_resumes_exactly_in_a_new_process(tmp_path, monkeypatch):
    (tmp_path / "userlayers.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import userlayers

    graph = synthetic_graph()
    torch.save(graph, tmp_path / "graph.pt")
    full = pretrain(graph, conv=userlayers.GatedMean, **OPTIONS)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 3)
        with pytest.raises(Interrupted):
            pretrain(graph, conv=userlayers.GatedMean, checkpoint_dir=tmp_path / "run", checkpoint_every=1, **OPTIONS)
    saved = load_model(tmp_path / "run" / "masked_gene_model.pt")
    assert saved.config["encoder"]["conv"] == "userlayers:GatedMean"

    # The child gets stgraph's own path, not the test's: the user's folder is not on it.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-c", NEW_PROCESS, str(tmp_path), json.dumps(OPTIONS)],
                         capture_output=True, text=True, cwd="/", env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    # It said only "cannot import the layer factory 'userlayers:GatedMean' recorded in the config".
    assert report["refused"] == (
        "cannot import the layer factory 'userlayers:GatedMean' recorded in the config (No module "
        "named 'userlayers'); make its module importable or pass it again as conv="
    )
    assert report["layer"] == "userlayers"
    assert torch.equal(torch.load(tmp_path / "logits.pt"), saved(graph))
    assert report["history"] == pytest.approx(full.history, nan_ok=True, rel=0, abs=0)
    assert_same_weights_as(full.model, torch.load(tmp_path / "resumed.pt"))
