"""Tests of stgraph.tl.enhance / stgraph.pl.enhance and the enhancer's training data."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse  # noqa: E402
import torch  # noqa: E402

from stgraph.pl._enhance import enhance as plot_enhance  # noqa: E402
from stgraph.spots._baselines import nearest  # noqa: E402
from stgraph.spots._expression import log1p_cp10k  # noqa: E402
from stgraph.spots._lattice import coarse_sublattice, lattice_positions  # noqa: E402
from stgraph.spots._masks import draw_mask  # noqa: E402
from stgraph.spots._train import EnhancerParams, EnhancerTrainer, significant_improvement  # noqa: E402
from stgraph.tl._enhance import enhance  # noqa: E402

FAST = {"epochs": 2, "n_ensemble": 1, "hidden_channels": 16, "progress": False}


def lattice(grid: str, n_rows: int, n_cols: int) -> np.ndarray:
    """``(row, col)`` array coordinates of a full rectangular patch of a lattice."""
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    if grid == "hexagonal":  # Visium: columns step by 2, row + col even
        cols = 2 * cols + rows % 2
    return np.column_stack([rows.ravel(), cols.ravel()])


def smooth_field(xy: np.ndarray, n_genes: int, seed: int) -> np.ndarray:
    """Log-rates ``(n, n_genes)``: each gene mixes three smooth spatial factors."""
    rng = np.random.default_rng(seed)
    factors = np.column_stack([
        np.sin(xy[:, 0] / 3.0), np.cos(xy[:, 1] / 2.5), np.sin((xy[:, 0] + xy[:, 1]) / 4.0),
    ])
    return factors @ rng.normal(0.0, 1.0, (3, n_genes)) + rng.uniform(0.5, 2.5, n_genes)


def slide(grid: str = "square", n_rows: int = 12, n_cols: int = 12, n_genes: int = 40, seed: int = 0):
    """Counts drawn from :func:`smooth_field`; returns ``(adata, log_rate)``.

    Pixel coordinates are a rotated, scaled copy of the lattice positions (100 px
    per spot spacing), as for a real slide.
    """
    rc = lattice(grid, n_rows, n_cols)
    xy = np.column_stack([rc[:, 1] / 2.0, rc[:, 0] * np.sqrt(3) / 2]) if grid == "hexagonal" else rc[:, ::-1] * 1.0
    log_rate = smooth_field(xy, n_genes, seed)
    counts = np.random.default_rng(seed + 1).poisson(np.exp(log_rate)).astype(np.float32)
    angle = 0.1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    obs = pd.DataFrame(
        {"array_row": rc[:, 0], "array_col": rc[:, 1], "label": pd.Categorical(["a", "b"] * (len(rc) // 2) + ["a"] * (len(rc) % 2))},
        index=[f"spot{i}" for i in range(len(rc))],
    )
    adata = ad.AnnData(counts, obs=obs, var=pd.DataFrame(index=[f"gene{g}" for g in range(n_genes)]))
    adata.obsm["spatial"] = xy @ rotation.T * 100.0 + 500.0
    return adata, log_rate


@pytest.fixture(scope="module", params=["square", "hexagonal"])
def super_resolved(request):
    adata, _ = slide(request.param, 8, 8, 30)
    adata.uns["spatial"] = {"lib": {"images": {"hires": np.zeros((60, 60, 3), dtype=np.float32)},
                                    "scalefactors": {"spot_diameter_fullres": 80.0, "tissue_hires_scalef": 0.05}}}
    adata.obs["library_id"] = pd.Categorical(["lib"] * adata.n_obs)
    return request.param, adata, enhance(adata, "super_resolution", **FAST)


def test_beats_nearest_neighbour_on_smooth_field():
    adata, log_rate = slide("square", 14, 14, 40, seed=3)
    held = np.random.default_rng(0).permutation(adata.n_obs)[: int(0.4 * adata.n_obs)]
    is_held = np.zeros(adata.n_obs, dtype=bool)
    is_held[held] = True
    observed = adata[~is_held].copy()
    rc = np.column_stack([adata.obs["array_row"], adata.obs["array_col"]]).astype(float)
    out = enhance(observed, "impute", positions=rc[is_held], seed=0, progress=False, epochs=3, n_ensemble=1)
    new = out[out.obs["imputed"].to_numpy()]
    assert new.n_obs == is_held.sum()
    assert np.array_equal(new.obs[["array_row", "array_col"]].to_numpy(), rc[is_held])
    pos = lattice_positions(rc, "square")
    naive = nearest(pos[~is_held], log1p_cp10k(observed.X), pos[is_held])

    def median_pcc(pred):
        truth = log_rate[is_held]
        return np.median([np.corrcoef(truth[:, g], pred[:, g])[0, 1] for g in range(truth.shape[1])])

    enhanced, baseline = median_pcc(new.X), median_pcc(naive)
    assert enhanced > 0.8
    assert enhanced > baseline + 0.15


def test_held_out_positions_are_never_training_targets(monkeypatch):
    adata, _ = slide("hexagonal", 10, 10, 20)
    rc = np.column_stack([adata.obs["array_row"], adata.obs["array_col"]]).astype(float)
    is_held = ~coarse_sublattice(rc, "hexagonal") & (np.arange(adata.n_obs) % 2 == 0)
    trainers = []

    class Recording(EnhancerTrainer):
        def __post_init__(self):
            super().__post_init__()
            trainers.append(self)

    monkeypatch.setattr("stgraph.tl._enhance.EnhancerTrainer", Recording)
    enhance(adata[~is_held].copy(), "impute", positions=rc[is_held], masks=("random", "block", "sublattice"), **FAST)
    (trainer,) = trainers
    observed = {tuple(p) for p in rc[~is_held]}
    held_out = {tuple(p) for p in rc[is_held]}
    assert {tuple(p) for p in trainer.rc} == observed
    assert len(trainer.masks) == 16 + 16 + 16  # shrinkage calibration, training, validation tasks
    targets = set()
    for hidden, target in trainer.masks:
        assert hidden.shape == target.shape == (len(observed),)
        assert not (target & ~hidden).any()
        targets |= {tuple(p) for p in trainer.rc[target]}
    assert targets and targets <= observed
    assert not targets & held_out


def test_validation_spots_are_not_training_targets():
    adata, _ = slide("square", 10, 10, 20)
    rc = np.column_stack([adata.obs["array_row"], adata.obs["array_col"]]).astype(float)
    trainer = EnhancerTrainer(rc, log1p_cp10k(adata.X), "square", EnhancerParams(epochs=1, n_ensemble=2, n_tasks=8))
    with pytest.raises(RuntimeError, match="call fit"):
        trainer.predict(rc[:2] + 0.5)
    trainer.fit(progress=False)
    assert len(trainer.masks) == 2 * (8 + 8 + 8) and len(trainer.shrinkage) == 2
    for member in range(2):  # per member: shrinkage calibration, training, validation tasks
        tasks = trainer.masks[24 * member: 24 * (member + 1)]
        calibration, train, val = (np.any([t for _, t in tasks[k: k + 8]], axis=0) for k in (0, 8, 16))
        assert calibration.any() and train.any() and val.any()
        assert not (calibration & val).any() and not (train & val).any()
    assert not np.array_equal(*trainer.shrinkage)  # each member calibrates on its own spots
    # progress="False" is a true string: it showed the bar.
    with pytest.raises(TypeError, match=r"^progress must be a bool \(True or False\), got 'False'$"):
        trainer.fit(progress="False")


def test_significant_improvement_needs_two_standard_errors():
    assert significant_improvement(np.array([1.0, 1.0, 1.0]))
    assert not significant_improvement(np.array([1.0, -1.0]))
    assert not significant_improvement(np.array([3.0, 1.0]))  # mean 2 = 2 x standard error 1
    assert significant_improvement(np.array([3.0, 1.2]))  # mean 2.1 > 2 x 0.9
    assert not significant_improvement(np.array([5.0]))


def test_super_resolution_output(super_resolved, tmp_path):
    grid, adata, out = super_resolved
    n = adata.n_obs
    new = out.obs["imputed"].to_numpy()
    # 8 x 8 spots: square grid gains 7*8*2 edge midpoints and 7*7 cell centres;
    # hexagonal gains one midpoint per neighbouring pair (7*8 in rows, 2*7*8 - 7 between rows).
    assert new.sum() == (7 * 8 * 2 + 49 if grid == "square" else 7 * 8 + 2 * 7 * 8 - 7)
    assert list(out.obs_names[:n]) == list(adata.obs_names) and not new[:n].any() and new[n:].all()
    rc_new = out.obs.loc[new, ["array_row", "array_col"]].to_numpy()
    assert np.all(np.isin(np.mod(rc_new * 2, 2), [0, 1])) and np.any(np.mod(rc_new, 1) == 0.5)
    assert np.array_equal(out.obsm["spatial"][:n], adata.obsm["spatial"])
    # the affine map is exact on a synthetic slide: a midpoint lands between its two spots
    first = np.flatnonzero(new)[0]
    row, col = rc_new[0]
    nbrs = adata.obs.index[(np.abs(adata.obs["array_row"] - row) <= 0.5) & (np.abs(adata.obs["array_col"] - col) <= 1)]
    assert np.allclose(out.obsm["spatial"][first], adata[nbrs].obsm["spatial"].mean(axis=0))
    np.testing.assert_array_equal(out.layers["counts"][:n].toarray(), adata.X)
    assert out.layers["counts"][n:].nnz == 0
    np.testing.assert_allclose(out.X[:n], log1p_cp10k(adata.X), rtol=1e-6)
    assert np.isfinite(out.X).all()
    assert out.uns["spatial"]["lib"]["scalefactors"]["spot_diameter_fullres"] == 40.0
    assert adata.uns["spatial"]["lib"]["scalefactors"]["spot_diameter_fullres"] == 80.0
    assert out.uns["enhance"]["grid"] == grid
    assert out.uns["enhance"]["positions"] == "sub_lattice" and out.uns["enhance"]["max_gap_size"] is None
    assert out.layers["counts"].dtype == np.float32 and list(out.layers) == ["counts"]
    # per member one calibration slope per low-rank score (rank 10, capped by the 30 genes' embedding)
    assert out.uns["enhance"]["shrinkage"].shape == (1, 10)
    # a member keeps a trained epoch only if it beats the interpolation (epoch 0) on its set-aside spots
    losses = out.uns["enhance"]["validation_loss"]
    for member, kept in enumerate(out.uns["enhance"]["best_epochs"]):
        assert losses[str(member)][kept] <= losses[str(member)][0]
    out.write_h5ad(tmp_path / "out.h5ad")
    back = ad.read_h5ad(tmp_path / "out.h5ad")
    assert back.obs["label"].dtype == "category" and back.obs["label"].isna().sum() == new.sum()
    assert (back.obs["library_id"] == "lib").all()  # the one library's id, new spots included
    np.testing.assert_array_equal(back.X, out.X)
    assert back.uns["enhance"]["positions"] == "sub_lattice" and back.uns["enhance"]["max_gap_size"] is None


@pytest.mark.parametrize("grid", ["square", "hexagonal"])
def test_new_spots_sit_between_their_spots_on_a_warped_slide(grid):
    # Legacy ST spots lie up to 0.2 spacings off the best affine map of array to pixel
    # coordinates (HER2 A1, B1, mouse olfactory bulb); the map alone put midpoints up
    # to 0.17 spacings (a third of the halved spacing) from the mean of their two spots.
    adata, _ = slide(grid, 8, 8, 12)
    adata.obsm["spatial"] = adata.obsm["spatial"] + np.random.default_rng(0).normal(0.0, 10.0, (adata.n_obs, 2))
    out = enhance(adata, "super_resolution", **{**FAST, "epochs": 0})
    new = out.obs["imputed"].to_numpy()
    rc = adata.obs[["array_row", "array_col"]].to_numpy(dtype=float)
    corners = {2: 0, 4: 0}
    for (row, col), xy in zip(out.obs.loc[new, ["array_row", "array_col"]].to_numpy(), out.obsm["spatial"][new]):
        # the spots the new one lies halfway between: two of a pair, or a square cell's four corners
        dr, dc = np.abs(rc[:, 0] - row), np.abs(rc[:, 1] - col)
        between = (dr <= 0.5) & (dc <= 0.5) if grid == "square" else ((dr == 0) & (dc == 1)) | ((dr == 0.5) & (dc == 0.5))
        if between.sum() in corners:
            corners[between.sum()] += 1
            np.testing.assert_allclose(xy, adata.obsm["spatial"][between].mean(axis=0), rtol=0, atol=1e-9)
    assert corners == ({2: 7 * 8 * 2, 4: 7 * 7} if grid == "square" else {2: 7 * 8 + 2 * 7 * 8 - 7, 4: 0})


def test_scanpy_knows_the_output_is_log_transformed(super_resolved):
    # X is log1p(CP10k): without scanpy's uns['log1p'] record, sc.pp.log1p took the log
    # a second time without a word.
    import io

    import scanpy as sc

    _, adata, out = super_resolved
    assert out.uns["log1p"] == {"base": None} and "log1p" not in adata.uns
    log, previous = io.StringIO(), sc.settings.logfile
    sc.settings.logfile = log
    try:
        sc.pp.log1p(out.copy())
    finally:
        sc.settings.logfile = previous
    assert "adata.X seems to be already log-transformed." in log.getvalue()


def test_squidpy_plots_the_output(super_resolved):
    # squidpy is a dependency: a missing squidpy must fail here, not skip.
    import squidpy as sq

    _, _, out = super_resolved
    for where in ({"library_id": "lib"}, {"library_key": "library_id"}):
        sq.pl.spatial_scatter(out, color="gene0", img_res_key="hires", **where)
        marks = [max(len(c.get_paths()), len(c.get_offsets())) for ax in plt.gcf().axes for c in ax.collections]
        assert out.n_obs in marks, where  # library_key: spots without a library id are left out
        plt.close("all")


def test_squidpy_plots_the_imputed_flag_as_documented(super_resolved):
    # squidpy 1.8 cannot colour by a bool column over an image; the categorical copy
    # that tl.enhance's docstring advises plots both kinds of spot.
    import squidpy as sq

    _, _, out = super_resolved
    with pytest.raises(ValueError, match="Invalid RGBA argument"):
        sq.pl.spatial_scatter(out, color="imputed", img_res_key="hires", library_id="lib")
    plt.close("all")
    shown = out.copy()
    shown.obs["imputed_spot"] = shown.obs["imputed"].astype("category")
    sq.pl.spatial_scatter(shown, color="imputed_spot", img_res_key="hires", library_id="lib")
    legend = [text.get_text() for ax in plt.gcf().axes if ax.get_legend() for text in ax.get_legend().get_texts()]
    plt.close("all")
    assert sorted(legend) == ["False", "True"]


def test_plot_enhance_panels(super_resolved):
    _, _, out = super_resolved
    fig = plot_enhance(out, ["gene0", "gene1"])
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        "gene0 (measured)", "gene0 (enhanced)", "gene1 (measured)", "gene1 (enhanced)"]
    n_original = int((~out.obs["imputed"]).sum())
    assert [len(ax.collections[0].get_offsets()) for ax in panels] == [n_original, out.n_obs] * 2
    with pytest.raises(ValueError, match="not in"):
        plot_enhance(out, "nope")
    with pytest.raises(TypeError, match=r"^`adata` must be an AnnData, got DataFrame\.$"):
        plot_enhance(out.obs, "gene0")
    twice = out.copy()
    twice.var_names = ["gene0", "gene0", *out.var_names[2:]]
    with pytest.raises(ValueError, match=r"^Genes named more than once in `adata.var_names`: \['gene0'\]; make"):
        plot_enhance(twice, ["gene2", "gene0"])
    plot_enhance(twice, "gene2")  # the other genes still plot
    plt.close("all")


def test_plot_enhance_spots_are_nine_tenths_of_the_spacing(super_resolved):
    from matplotlib.transforms import Affine2D
    from scipy.spatial import cKDTree

    _, _, out = super_resolved
    fig = plot_enhance(out, "gene0")
    fig.canvas.draw()  # the colour bar has shrunk the axes by now
    for ax in fig.axes[:2]:
        spots = ax.collections[0]
        offsets = np.asarray(spots.get_offsets())
        spacing = np.median(cKDTree(offsets).query(offsets, k=2)[0][:, 1])
        marker = Affine2D(spots.get_transforms()[0]) + spots.get_transform()
        diameter_px = spots.get_paths()[0].get_extents(marker).width
        spacing_px = np.ptp(ax.transData.transform([[0.0, 0.0], [spacing, 0.0]])[:, 0])
        assert diameter_px / spacing_px == pytest.approx(0.9, abs=0.02)
        # Every spot lies whole inside the panel.
        (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
        data_radius = diameter_px / 2 / np.ptp(ax.transData.transform([[0.0, 0.0], [1.0, 0.0]])[:, 0])
        assert offsets[:, 0].min() - data_radius >= x0 and offsets[:, 0].max() + data_radius <= x1
        assert offsets[:, 1].min() - data_radius >= y0 and offsets[:, 1].max() + data_radius <= y1
    plt.close("all")


def test_deterministic_on_cpu():
    adata, _ = slide("square", 6, 6, 12)
    first = enhance(adata, "super_resolution", seed=1, **FAST)
    second = enhance(adata, "super_resolution", seed=1, **FAST)
    np.testing.assert_array_equal(first.X, second.X)
    assert first.uns["enhance"]["best_epochs"] == second.uns["enhance"]["best_epochs"]
    # One mask kind may be named as a string (a tuple of it would be its letters).
    single = enhance(adata, "super_resolution", seed=1, masks="block", **FAST)
    np.testing.assert_array_equal(single.X, enhance(adata, "super_resolution", seed=1, masks=("block",), **FAST).X)
    assert single.uns["enhance"]["masks"] == ["block"]


def test_impute_fills_lattice_gaps_by_default():
    adata, _ = slide("hexagonal", 7, 7, 12)
    centre = (adata.obs["array_row"] == 3) & (adata.obs["array_col"] == 7)
    out = enhance(adata[~centre.to_numpy()].copy(), "impute", **FAST)
    assert out.obs.loc[out.obs["imputed"], ["array_row", "array_col"]].to_numpy().tolist() == [[3, 7]]
    # The imputed spots are lattice sites: the integer array coordinates were turned into floats.
    assert (out.obs["array_row"].dtype, out.obs["array_col"].dtype) == (adata.obs["array_row"].dtype,) * 2
    no_gaps = enhance(adata, "impute", **FAST)
    assert no_gaps.n_obs == adata.n_obs and not no_gaps.obs["imputed"].any()
    # A lost patch of two neighbouring spots is a hole too, unless max_gap_size leaves it out.
    patch = centre | (adata.obs["array_row"] == 3) & (adata.obs["array_col"] == 9)
    lost = adata[~patch.to_numpy()].copy()
    filled = enhance(lost, "impute", **FAST)
    assert filled.obs.loc[filled.obs["imputed"], ["array_row", "array_col"]].to_numpy().tolist() == [[3, 7], [3, 9]]
    assert filled.uns["enhance"]["positions"] == "enclosed_holes" and filled.uns["enhance"]["max_gap_size"] is None
    left_out = enhance(lost, "impute", max_gap_size=1, **FAST)
    assert not left_out.obs["imputed"].any() and left_out.uns["enhance"]["max_gap_size"] == 1
    given = enhance(lost, "impute", positions=[(3, 7)], **FAST)
    assert given.uns["enhance"]["positions"] == "given" and given.obs["imputed"].sum() == 1
    for kwargs in (dict(mode="super_resolution"), dict(mode="impute", positions=[(3, 7)])):
        with pytest.raises(ValueError, match=r"^`max_gap_size` is only used with `mode='impute'` and no `positions`\.$"):
            enhance(lost, max_gap_size=2, **kwargs, **FAST)
    with pytest.raises(ValueError, match="max_gap_size"):
        enhance(lost, "impute", max_gap_size=0, **FAST)


def test_impute_when_a_task_hides_only_set_aside_spots():
    # With seed 5 one calibration mask hides only spots set aside for validation: it has
    # no target, and interpolating at no position raised a reshape error.
    adata, _ = slide("square", 6, 6, 10)
    gap = (adata.obs["array_row"] == 2) & (adata.obs["array_col"] == 2)
    out = enhance(adata[~gap.to_numpy()].copy(), "impute", seed=5, **FAST)
    assert out.obs.loc[out.obs["imputed"], ["array_row", "array_col"]].to_numpy().tolist() == [[2, 2]]
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a[:1].copy(), "at least 4 spots"),
        (lambda a: _with_x(a, np.zeros(a.shape, dtype=np.float32)), "all zero"),
        (lambda a: _with_x(a, np.where(np.arange(a.n_vars) == 0, np.nan, a.X)), "NaN"),
        (lambda a: _with_x(a, -a.X), "negative"),
        (lambda a: _drop_obs(a, "array_row"), "array_row"),
    ],
)
def test_bad_input_raises(change, message):
    adata, _ = slide("square", 5, 5, 8)
    with pytest.raises(ValueError, match=message):
        enhance(change(adata), **FAST)


def test_bad_arguments_raise():
    adata, _ = slide("square", 5, 5, 8)
    rc = adata.obs[["array_row", "array_col"]].to_numpy()
    with pytest.raises(ValueError, match="factor=2"):
        enhance(adata, factor=3, **FAST)
    with pytest.raises(ValueError, match=r"^2 of the 3 `positions` \(e\.g\. \[\[0\.0, 0\.0\], \[0\.0, 1\.0\]\]\) "
                       r"coincide with observed spots; only unobserved positions can be imputed\.$"):
        enhance(adata, "impute", positions=[*rc[:2], (-1, 0)], **FAST)
    with pytest.raises(ValueError, match="mode"):
        enhance(adata, "denoise", **FAST)
    with pytest.raises(ValueError, match="masks"):
        enhance(adata, masks=("checkerboard",), **FAST)
    with pytest.raises(TypeError, match="AnnData"):
        enhance(adata.X, **FAST)
    with pytest.raises(ValueError, match="hexagonal"):
        enhance(adata, grid="hexagonal", **FAST)
    # progress="False" is a true string: it showed the bar.
    with pytest.raises(TypeError, match=r"^progress must be a bool \(True or False\), got 'False'$"):
        enhance(adata, **{**FAST, "progress": "False"})


def test_input_is_not_modified():
    adata, _ = slide("square", 5, 5, 8)
    before = adata.copy()
    torch_rng = torch.random.get_rng_state()
    enhance(adata, **FAST)
    assert torch.equal(torch.random.get_rng_state(), torch_rng)  # the global torch RNG is not reseeded
    np.testing.assert_array_equal(adata.X, before.X)
    pd.testing.assert_frame_equal(adata.obs, before.obs)
    assert list(adata.uns) == list(before.uns) and list(adata.layers) == []


def test_an_output_given_back_is_refused_and_its_measured_spots_are_not():
    # Imputed spots hold 0 in layers['counts']: given back (to super-resolve a filled
    # slide) they were trained on as measured spots without expression, and came out all 0.
    adata, _ = slide("square", 6, 6, 10)
    hole = ((adata.obs["array_row"] == 2) & (adata.obs["array_col"] == 3)).to_numpy()
    filled = enhance(adata[~hole].copy(), "impute", **{**FAST, "epochs": 0})
    assert filled.obs["imputed"].sum() == 1
    with pytest.raises(ValueError, match=r"^1 of the 36 spots are predicted ones of an earlier `tl\.enhance` "
                       r"\(`obs\['imputed'\]`\), not measurements.*`adata\[~adata\.obs\['imputed'\]\]`"):
        enhance(filled, layer="counts", **FAST)
    measured = filled[~filled.obs["imputed"]]
    again = enhance(measured, layer="counts", **{**FAST, "epochs": 0})
    np.testing.assert_array_equal(again.X[:35], log1p_cp10k(adata[~hole].X))
    assert again.obs["imputed"].sum() == again.n_obs - 35
    mine = adata.copy()
    mine.obs["imputed"] = "no"  # the user's own column would be lost
    with pytest.raises(ValueError, match=r"^`adata\.obs\['imputed'\]` \(dtype object\) would be overwritten"):
        enhance(mine, **FAST)


def test_the_measured_spots_of_a_saved_super_resolution_keep_their_spot_diameter(tmp_path):
    # The measured spots of a super-resolved output carry its uns, whose diameter was
    # halved for the finer lattice: enhanced again they were halved once more (80 -> 20).
    adata, _ = slide("square", 6, 6, 10)
    adata.uns["spatial"] = {"lib": {"scalefactors": {"spot_diameter_fullres": 80.0}}}
    fine = enhance(adata, "super_resolution", **{**FAST, "epochs": 0})
    fine.write_h5ad(tmp_path / "fine.h5ad")
    back = ad.read_h5ad(tmp_path / "fine.h5ad")
    with pytest.raises(ValueError, match=r"^85 of the 121 spots are predicted ones of an earlier `tl\.enhance`"):
        enhance(back, layer="counts", **FAST)
    measured = back[~back.obs["imputed"]].copy()
    assert measured.uns["spatial"]["lib"]["scalefactors"]["spot_diameter_fullres"] == 40.0
    again = enhance(measured, "super_resolution", layer="counts", **{**FAST, "epochs": 0})
    assert again.uns["spatial"]["lib"]["scalefactors"]["spot_diameter_fullres"] == 40.0
    np.testing.assert_array_equal(again.X, fine.X)
    hole = ((measured.obs["array_row"] == 2) & (measured.obs["array_col"] == 3)).to_numpy()
    filled = enhance(measured[~hole].copy(), "impute", layer="counts", **{**FAST, "epochs": 0})
    assert filled.uns["spatial"]["lib"]["scalefactors"]["spot_diameter_fullres"] == 80.0
    assert filled.obs["imputed"].sum() == 1


def _with_x(adata, x):
    adata = adata.copy()
    adata.X = np.asarray(x, dtype=np.float32)
    return adata


def _drop_obs(adata, key):
    adata = adata.copy()
    del adata.obs[key]
    return adata


def test_new_spots_leave_other_obs_columns_missing_and_write_to_h5ad(tmp_path):
    adata, _ = slide("square", 6, 6, 12)
    n = adata.n_obs
    adata.obs["flag"] = np.arange(n) % 3 == 0
    adata.obs["note"] = [f"n{i}" for i in range(n)]
    before = adata.obs.copy()
    out = enhance(adata, **FAST)
    pd.testing.assert_frame_equal(adata.obs, before)
    new = out.obs["imputed"].to_numpy()
    assert out.obs["flag"].dtype == "boolean"
    np.testing.assert_array_equal(out.obs["flag"][:n].to_numpy(dtype=bool), before["flag"])
    assert out.obs["flag"][new].isna().all() and out.obs["note"][new].isna().all()
    assert out.obs["label"].dtype == before["label"].dtype and out.obs["label"][new].isna().all()
    out.write_h5ad(tmp_path / "out.h5ad")
    back = ad.read_h5ad(tmp_path / "out.h5ad")
    np.testing.assert_array_equal(back.obs["flag"].isna().to_numpy(), new)
    np.testing.assert_array_equal(back.obs["array_row"], out.obs["array_row"])


@pytest.mark.parametrize("grid", ["square", "hexagonal"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, bool])
def test_new_spots_are_in_tissue_where_all_their_nearest_spots_are(grid, dtype):
    adata, _ = slide(grid, 6, 8, 12)
    rc = adata.obs[["array_row", "array_col"]].to_numpy(dtype=float)
    inside = lattice_positions(rc, grid)[:, 0] < 2.6  # the right part of the slide is background
    adata.obs["in_tissue"] = inside.astype(dtype)
    before = adata.obs.copy()
    off = int((~inside).sum())
    with pytest.warns(UserWarning, match=rf"^{off} of the {len(rc)} spots have `obs\['in_tissue'\] == 0` \(off the "
                      r"tissue\): they are trained on and enhanced like the others\. To enhance the tissue only, "
                      r"pass `adata\[adata\.obs\['in_tissue'\] == 1\]`\.$"):
        out = enhance(adata, "super_resolution", **FAST)
    pd.testing.assert_frame_equal(adata.obs, before)
    assert out.obs["in_tissue"].dtype == np.dtype(dtype)
    new = out.obs["imputed"].to_numpy()
    np.testing.assert_array_equal(out.obs["in_tissue"][~new], before["in_tissue"])
    # Brute force: every observed spot at the smallest lattice distance is in the tissue.
    query = lattice_positions(out.obs.loc[new, ["array_row", "array_col"]].to_numpy(dtype=float), grid)
    dist = np.linalg.norm(query[:, None, :] - lattice_positions(rc, grid)[None, :, :], axis=2)
    nearest = dist <= dist.min(axis=1, keepdims=True) + 1e-9
    expected = np.where(nearest, inside[None, :], True).all(axis=1)
    np.testing.assert_array_equal(out.obs["in_tissue"][new].to_numpy().astype(bool), expected)
    assert 0 < expected.sum() < len(expected)
    # The usual filter keeps every new spot inside the tissue: nothing is dropped silently.
    kept = out[out.obs["in_tissue"] == 1] if dtype is not bool else out[out.obs["in_tissue"]]
    assert int(kept.obs["imputed"].sum()) == int(expected.sum())


def test_the_middle_of_a_lost_patch_reads_all_eight_spots_at_its_smallest_distance():
    # A lost diamond of 13 sites: its middle has 8 spots at sqrt(5) spacings, of which
    # only 6 were read (in_tissue, and the pixel offsets from the affine map).
    rows, cols = np.meshgrid(np.arange(-4, 5), np.arange(-4, 5), indexing="ij")
    rc = np.column_stack([rows.ravel(), cols.ravel()])
    rc = rc[np.abs(rc).sum(axis=1) > 2]
    p = rc[:, ::-1].astype(float)
    counts = np.random.default_rng(0).poisson(5.0, (len(rc), 6)).astype(np.float32)
    adata = ad.AnnData(counts, obs=pd.DataFrame({"array_row": rc[:, 0], "array_col": rc[:, 1]},
                                                index=[f"spot{i}" for i in range(len(rc))]))
    # A warp symmetric about the middle: its offsets from the affine map cancel over all eight.
    adata.obsm["spatial"] = 500.0 + 100.0 * p * (1.0 + 0.02 * (p**2).sum(axis=1, keepdims=True))
    ring = np.flatnonzero((rc**2).sum(axis=1) == 5)
    assert len(ring) == 8
    for spot in ring:
        adata.obs["in_tissue"] = np.int64(1)
        adata.obs.iloc[spot, adata.obs.columns.get_loc("in_tissue")] = 0
        out = enhance(adata, "impute", **{**FAST, "epochs": 0})
        assert out.obs.loc["imputed-0-0", "in_tissue"] == 0
    np.testing.assert_allclose(out[["imputed-0-0"]].obsm["spatial"], [[500.0, 500.0]], atol=1e-9)


def test_an_in_tissue_column_of_strings_is_left_missing_for_new_spots():
    adata, _ = slide("square", 6, 6, 12)
    adata.obs["in_tissue"] = "yes"
    out = enhance(adata, "super_resolution", **FAST)
    new = out.obs["imputed"].to_numpy()
    assert new.any() and out.obs["in_tissue"][new].isna().all() and (out.obs["in_tissue"][~new] == "yes").all()


def test_categorical_array_coordinates_become_numbers_and_strings_are_refused(tmp_path):
    adata, _ = slide("hexagonal", 6, 6, 12)
    plain = enhance(adata, **FAST)
    coded = adata.copy()
    for key in ("array_row", "array_col"):
        coded.obs[key] = pd.Categorical(coded.obs[key])
    out = enhance(coded, **FAST)
    for key in ("array_row", "array_col"):
        assert out.obs[key].dtype == np.float64 and not out.obs[key].isna().any()
        np.testing.assert_array_equal(out.obs[key], plain.obs[key])
    np.testing.assert_array_equal(out.X, plain.X)
    for strings in (adata.obs["array_row"].astype(str), pd.Categorical(adata.obs["array_row"].astype(str))):
        named = adata.copy()
        named.obs["array_row"] = strings
        with pytest.raises(ValueError, match=r"`obs\['array_row'\]` must hold numbers .*astype\(int\)"):
            enhance(named, **FAST)


def test_genes_never_detected_are_predicted_as_zero():
    adata, _ = slide("square", 6, 6, 12)
    adata.X[:, :3] = 0
    out = enhance(adata, **FAST)
    new = out.obs["imputed"].to_numpy()
    assert new.any()
    np.testing.assert_array_equal(out.X[new][:, :3], 0.0)
    assert (out.X[new][:, 3:] != 0).any()


@pytest.mark.parametrize(
    ("setting", "error", "message"),
    [
        ({"rank": 0}, ValueError, r"rank must be a positive integer, got 0"),
        ({"rank": 2.5}, TypeError, r"rank must be an integer, got 2.5"),
        ({"n_components": 0}, ValueError, r"n_components must be a positive integer, got 0"),
        ({"num_layers": 0}, ValueError, r"num_layers must be a positive integer, got 0"),
        ({"heads": 0}, ValueError, r"heads must be a positive integer, got 0"),
        ({"heads": 3}, ValueError, r"`hidden_channels` \(16\) must be divisible by `heads` \(3\)"),
        ({"epochs": -1}, ValueError, r"epochs must be an integer >= 0, got -1"),
        ({"n_ensemble": 0}, ValueError, r"n_ensemble must be a positive integer, got 0"),
        ({"n_ensemble": -2}, ValueError, r"n_ensemble must be a positive integer, got -2"),
        ({"radius": -1.0}, ValueError, r"radius must be a positive finite number, got -1\.0$"),
        ({"radius": float("inf")}, ValueError, r"radius must be a positive finite number, got inf"),
        ({"lambda_init": 0.0}, ValueError, r"lambda_init must be a positive finite number, got 0\.0"),
        ({"seed": -1}, ValueError, r"seed must be an integer >= 0, got -1"),
        ({"seed": 2**32}, ValueError, r"seed must be at most 2\*\*32 - 1 = 4294967295, got 4294967296"),
        ({"counts_layer": 3}, TypeError, r"`counts_layer` must be a non-empty string .*, got 3"),
        ({"counts_layer": ""}, TypeError, r"`counts_layer` must be a non-empty string .*, got ''"),
        ({"device": "tpu"}, ValueError, r"unknown device 'tpu'"),
    ],
)
def test_meaningless_parameters_raise(setting, error, message):
    adata, _ = slide("square", 5, 5, 8)
    with pytest.raises(error, match=message):
        enhance(adata, **{**FAST, **setting})


def test_zero_epochs_is_the_calibrated_interpolation():
    adata, _ = slide("square", 5, 5, 8)
    out = enhance(adata, **{**FAST, "epochs": 0})
    assert out.uns["enhance"]["best_epochs"] == [0]
    assert [len(h) for h in out.uns["enhance"]["validation_loss"].values()] == [1]


def test_impute_positions_must_be_distinct_reachable_lattice_sites():
    adata, _ = slide("hexagonal", 6, 6, 8)  # rows 0-5, row + col even, cols 0-11
    impute = lambda positions: enhance(adata, "impute", positions=np.asarray(positions), **{**FAST, "epochs": 0})  # noqa: E731
    with pytest.raises(ValueError, match=r"2 of the 3 `positions` \(e\.g\. \[\[6\.0, 1\.0\], \[6\.5, 2\.0\]\]\) are not sites of the hexagonal"):
        impute([[6, 1], [6.5, 2], [6, 2]])
    with pytest.raises(ValueError, match=r"1 of the 2 `positions` \(e\.g\. \[\[6\.0, 2\.0\]\]\) are duplicated"):
        impute([[6, 2], [6, 2]])
    with pytest.warns(UserWarning, match=r"1 of the 2 `positions` \(e\.g\. \[\[1000\.0, 1000\.0\]\]\) lie outside"):
        far = impute([[6, 2], [1000, 1000]])  # hundreds of spacings away: still a defined extrapolation
    assert np.isfinite(far.X).all()
    with pytest.warns(UserWarning, match=r"1 of the 2 `positions` \(e\.g\. \[\[10\.0, 2\.0\]\]\) lie outside.*extrapolation"):
        extrapolated = impute([[6, 2], [10, 2]])  # 4.3 spacings below the last row, outside the hull
    assert np.isfinite(extrapolated.X).all()
    # a missing row just past the edge is within `radius` of observed spots: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = impute([[6, 2], [6, 4]])
    assert out.obs_names[-2:].tolist() == ["imputed-6-2", "imputed-6-4"]
    assert np.isfinite(out.X).all()


def test_impute_between_far_apart_sections_is_defined():
    # Two 4 x 4 sections 100 spacings apart: the midpoint lies inside their convex hull
    # (no extrapolation warning), ~50 spacings from any spot, where every Gaussian
    # weight exp(-d² / 2) of the interpolation underflows unless taken relative to the nearest.
    left, _ = slide("square", 4, 4, 8)
    right = left.copy()
    right.obs_names = [f"r{name}" for name in right.obs_names]
    right.obs["array_col"] += 100
    right.obsm["spatial"] = right.obsm["spatial"] + np.array([100.0 * 100 * np.cos(0.1), 100.0 * 100 * np.sin(0.1)])
    both = ad.concat([left, right])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = enhance(both, "impute", positions=np.array([[1, 52]]), grid="square", **{**FAST, "epochs": 0})
    assert out.obs_names[-1] == "imputed-1-52" and np.isfinite(out.X).all()



def two_slides(**uns_merge):
    """Two 4 x 4 square slides joined as squidpy's docs do: ``anndata.concat(label='library_id')``."""
    slides = {}
    for k, library in enumerate(("A1", "B1")):
        one, _ = slide("square", 4, 4, 8, seed=k)
        one.uns["spatial"] = {library: {"scalefactors": {"spot_diameter_fullres": 80.0}}}
        slides[library] = one
    return ad.concat(slides, label="library_id", index_unique="-", **uns_merge)


def test_several_slides_raise_and_one_at_a_time_works():
    both = two_slides(uns_merge="unique")
    # Arrays that do not overlap passed, as one slide: the B1 spots one affine map away
    # from their pixels, and the new spots without a library id.
    both.obs["array_col"] = both.obs["array_col"] + np.where(both.obs["library_id"] == "B1", 10, 0)
    with pytest.raises(ValueError, match=r"^`obs\['library_id'\]` holds 2 libraries of `uns\['spatial'\]` "
                       r"\(\['A1', 'B1'\]\): enhance works on one slide at a time\..*uns_merge='unique'"):
        enhance(both, **FAST)
    # Without uns['spatial'] nothing names the slides: their shared array positions raise.
    with pytest.raises(ValueError, match=r"^32 spots share their \(array_row, array_col\) with another spot, e\.g\. "
                       r"\['spot0-A1', 'spot0-B1'\] at \[0, 0\]\. Spots of several slides"):
        enhance(two_slides(), **FAST)
    both = two_slides(uns_merge="unique")
    outs = {library: enhance(both[both.obs["library_id"] == library], **{**FAST, "epochs": 0}) for library in ("A1", "B1")}
    joined = ad.concat(outs, uns_merge="unique", index_unique="-")
    assert joined.obs["library_id"].value_counts().to_dict() == {"A1": 16 + 33, "B1": 16 + 33}
    assert joined.uns["spatial"]["B1"]["scalefactors"]["spot_diameter_fullres"] == 40.0
    assert both.obs["library_id"].value_counts().to_dict() == {"A1": 16, "B1": 16}


def test_imputed_sites_outside_narrow_integer_coordinates_widen_them():
    # A row -1 of uint8 coordinates was written as row 255.
    adata, _ = slide("square", 5, 5, 8)
    for key in ("array_row", "array_col"):
        adata.obs[key] = adata.obs[key].astype(np.uint8)
    impute = lambda positions: enhance(adata, "impute", positions=np.asarray(positions), **{**FAST, "epochs": 0})  # noqa: E731
    inside = impute([[5, 2]])
    assert inside.obs["array_row"].dtype == np.uint8 and inside.obs["array_row"].iloc[-1] == 5
    outside = impute([[-1, 2]])
    assert outside.obs["array_row"].dtype == np.int64 and outside.obs["array_col"].dtype == np.uint8
    assert outside.obs[["array_row", "array_col"]].iloc[-1].tolist() == [-1, 2]
    assert outside.obs_names[-1] == "imputed--1-2"


def test_impute_on_a_single_row_stays_on_the_row():
    row, _ = slide("square", 1, 8, 8)
    out = enhance(row, "impute", positions=[[0, 9]], **{**FAST, "epochs": 0})
    xy = row.obsm["spatial"]
    np.testing.assert_allclose(out.obsm["spatial"][-1], xy[-1] + 2 * (xy[1] - xy[0]))  # two columns past the end
    # Off the row the pixel position was made up: the row's own (minimum-norm affine fit).
    with pytest.raises(ValueError, match=r"^1 of the 2 `positions` \(e\.g\. \[\[1\.0, 3\.0\]\]\) lie off the "
                       r"single line of the observed spots, across which the affine map to pixel coordinates "
                       r"\(`obsm\['spatial'\]`\) is undetermined\.$"):
        enhance(row, "impute", positions=[[0, 9], [1, 3]], **FAST)


@pytest.mark.parametrize("change", [lambda row: row + 0.3, lambda row: row * 1.5])
def test_array_coordinates_must_be_integers(change):
    adata, _ = slide("hexagonal", 5, 5, 8)
    adata.obs["array_row"] = change(adata.obs["array_row"].astype(float))
    with pytest.raises(ValueError, match=r"integer spot indices.*non-integer `array_row`"):
        enhance(adata, **FAST)


def test_given_grid_must_fit_the_coordinates():
    hexagonal, _ = slide("hexagonal", 5, 5, 8)
    with pytest.raises(ValueError, match=r"`grid='square'` does not fit.*1\.00 times.*a hexagonal lattice"):
        enhance(hexagonal, grid="square", **FAST)
    square, _ = slide("square", 6, 6, 8)
    with pytest.raises(ValueError, match=r"one parity.*both even and odd"):
        enhance(square, grid="hexagonal", **FAST)
    checkerboard = square[(square.obs["array_row"] + square.obs["array_col"]).to_numpy() % 2 == 0].copy()
    with pytest.raises(ValueError, match=r"`grid='hexagonal'` does not fit.*1\.41 times.*a square lattice"):
        enhance(checkerboard, grid="hexagonal", **FAST)


@pytest.mark.parametrize("grid", [None, "square", "hexagonal"])
def test_hexagonal_coordinates_with_rows_and_columns_swapped_raise(grid):
    # One parity, and the pixel geometry is neither lattice's: the slide was taken for
    # a square grid (midpoints of spots sqrt(3) spacings apart, 2,780 instead of 2,757
    # new spots on the Visium prostate slide).
    hexagonal, _ = slide("hexagonal", 6, 6, 8)
    swapped = hexagonal.copy()
    swapped.obs[["array_row", "array_col"]] = hexagonal.obs[["array_col", "array_row"]].to_numpy()
    with pytest.raises(ValueError, match=r"^In `obsm\['spatial'\]` the spot two columns along a row is 1\.73 times "
                       r"as far .*`array_row` and `array_col` are swapped .*adata\.obs\[\['array_row', 'array_col'\]\] = "):
        enhance(swapped, grid=grid, **FAST)


@pytest.mark.parametrize(("odd_rows", "doubled"), [(0, "2 \\* array_col \\+ array_row % 2"),
                                                   (1, "2 \\* array_col \\+ \\(array_row \\+ 1\\) % 2")],
                         ids=["odd rows right", "odd rows left"])
def test_hexagonal_offset_coordinates_raise(odd_rows, doubled):
    # Offset coordinates number each row's spots 0, 1, 2...: both parities of row + col,
    # so the slide was taken for a square grid and new spots placed between rows.
    hexagonal, _ = slide("hexagonal", 6, 6, 8)
    hexagonal.obs["array_col"] = (hexagonal.obs["array_col"] + odd_rows) // 2
    shift = "+0.50" if odd_rows == 0 else "-0.50"
    for grid in (None, "square", "hexagonal"):
        with pytest.raises(ValueError, match=rf"^In `obsm\['spatial'\]` the odd rows are shifted by \{shift} of a "
                           rf"column step along the rows: .*offset coordinates.*`array_col = {doubled}`\.$"):
            enhance(hexagonal, grid=grid, **FAST)
    row, col = hexagonal.obs["array_row"], hexagonal.obs["array_col"]
    hexagonal.obs["array_col"] = 2 * col + (row + odd_rows) % 2  # the conversion the message suggests
    assert enhance(hexagonal, **{**FAST, "epochs": 0}).uns["enhance"]["grid"] == "hexagonal"


def test_duplicated_barcodes_raise():
    adata, _ = slide("square", 5, 5, 8)
    adata.obs_names = ["spot0", "spot0"] + adata.obs_names[2:].tolist()
    with pytest.raises(ValueError, match=r"1 duplicated barcode\(s\), e\.g\. \['spot0'\].*obs_names_make_unique"):
        enhance(adata, **FAST)


def test_duplicated_gene_names_raise():
    # anndata only warns; the output's genes are then ambiguous for `adata[:, gene]` and plots.
    adata, _ = slide("square", 5, 5, 8)
    adata.var_names = ["gene0", "gene1", "gene0", "gene1", *adata.var_names[4:]]
    with pytest.raises(ValueError, match=re.escape(
        "`adata.var_names` has 2 duplicated gene name(s), e.g. ['gene0', 'gene1']; make them unique first, "
        "e.g. with `adata.var_names_make_unique()`."
    )):
        enhance(adata, **FAST)


def test_normalised_counts_raise_and_raw_layer_is_used():
    adata, _ = slide("square", 5, 5, 8)
    reference = enhance(adata, **{**FAST, "epochs": 0})
    normalised = adata.copy()
    normalised.layers["raw"] = adata.X.copy()
    normalised.X = log1p_cp10k(adata.X)
    with pytest.raises(ValueError, match=r"`adata\.X` holds non-integer values.*`layer=`"):
        enhance(normalised, **{**FAST, "epochs": 0})
    out = enhance(normalised, layer="raw", **{**FAST, "epochs": 0})
    np.testing.assert_array_equal(out.X, reference.X)


def test_a_backed_slide_with_sparse_counts_is_enhanced_like_one_in_memory(tmp_path):
    # anndata.read_h5ad(path, backed="r") leaves a sparse X on disk: np.asarray of it
    # failed with "setting an array element with a sequence".
    adata, _ = slide("square", 5, 5, 8)
    adata.X = scipy.sparse.csr_matrix(adata.X)
    adata.write_h5ad(tmp_path / "spots.h5ad")
    backed = ad.read_h5ad(tmp_path / "spots.h5ad", backed="r")
    out = enhance(backed, **{**FAST, "epochs": 0})
    assert backed.isbacked and not out.isbacked
    np.testing.assert_array_equal(out.X, enhance(adata, **{**FAST, "epochs": 0}).X)
    backed.file.close()


def test_counts_kept_in_raw_are_pointed_to():
    # scanpy's workflow: adata.raw = adata (the counts), then normalise, log and scale X.
    adata, _ = slide("square", 5, 5, 8)
    reference = enhance(adata, **{**FAST, "epochs": 0})
    scaled = adata.copy()
    scaled.raw = scaled
    scaled.X = log1p_cp10k(scaled.X) - 1.0
    with pytest.raises(ValueError, match=r"^`adata\.X` contains negative values; raw counts are expected\. Pass the "
                       r"layer with the raw counts as `layer=`, or `adata\.raw\.to_adata\(\)` if `adata\.raw` holds them\.$"):
        enhance(scaled, **FAST)
    scaled.X = log1p_cp10k(adata.X)
    with pytest.raises(ValueError, match=r"not raw counts.*`adata\.raw\.to_adata\(\)` if `adata\.raw` holds them\.$"):
        enhance(scaled, **FAST)
    np.testing.assert_array_equal(enhance(scaled.raw.to_adata(), **{**FAST, "epochs": 0}).X, reference.X)


def test_plot_enhance_outlines_stay_thin_on_a_whole_slide():
    # A 4,096-spot grid super-resolved x2, as tl.enhance lays it out: the original spots on
    # even coordinates, new ones between them.
    rows, cols = np.meshgrid(np.arange(0, 128, 1.0), np.arange(0, 128, 1.0), indexing="ij")
    xy = np.column_stack([cols.ravel(), rows.ravel()]) * 50.0
    new = (rows.ravel() % 2 == 1) | (cols.ravel() % 2 == 1)
    out = ad.AnnData(np.random.default_rng(0).random((len(xy), 1), dtype=np.float32),
                     obs=pd.DataFrame({"imputed": new}, index=[f"s{i}" for i in range(len(xy))]),
                     var=pd.DataFrame(index=["gene0"]))
    out.obsm["spatial"] = xy
    fig = plot_enhance(out, "gene0")
    fig.canvas.draw()
    spots = fig.axes[1].collections[0]
    to_points = 72 / fig.dpi
    diameter_pt = np.ptp(fig.axes[1].transData.transform([[0.0, 0.0], [0.9 * 50.0, 0.0]])[:, 0]) * to_points
    assert diameter_pt < 3  # the case the outline width adapts to
    width = spots.get_linewidths()[0]
    assert width == pytest.approx(0.1 * diameter_pt, rel=1e-3)
    plt.close("all")


def test_plot_enhance_outlines_are_0_3_pt_on_a_small_slide(super_resolved):
    _, _, out = super_resolved
    fig = plot_enhance(out, "gene0")
    assert fig.axes[1].collections[0].get_linewidths()[0] == pytest.approx(0.3)
    plt.close("all")


def test_enhancer_params_check_dropout_like_the_other_layers():
    # A bool passed as 0 / 1 and a string failed in the comparison.
    for value, error, message in ((True, TypeError, "^dropout must be a real number, got bool$"),
                                  ("0.1", TypeError, "^dropout must be a real number, got str$"),
                                  (1.0, ValueError, r"^dropout must lie in \[0, 1\), got 1.0$")):
        with pytest.raises(error, match=message):
            EnhancerParams(dropout=value)
    assert type(EnhancerParams(dropout=np.float32(0.25)).dropout) is float  # recorded in uns as a plain value


VISIUM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spots" / "visium_prostate_normal.h5ad"


@pytest.mark.skipif(not VISIUM.exists(), reason="shared/data/spots not present")
def test_predictions_are_never_negative(monkeypatch):
    # The low-rank reconstruction dips below 0 for about 5 % of the new spots' values on
    # the real Visium slide; log1p(CP10k) cannot, so the output clips it there.
    reconstructions = []
    predict = EnhancerTrainer.predict

    def recorded(self, query):
        reconstructions.append(predict(self, query))
        return reconstructions[-1]

    monkeypatch.setattr(EnhancerTrainer, "predict", recorded)
    adata = ad.read_h5ad(VISIUM)
    out = enhance(adata, "super_resolution", **FAST)
    (raw,) = reconstructions
    assert 0.03 < (raw < 0).mean() < 0.1 and raw.min() < -0.2
    np.testing.assert_array_equal(out.X[adata.n_obs:], np.maximum(raw, 0.0))


@pytest.mark.parametrize("masks", [(), ["checkerboard"]])
def test_enhancer_params_refuse_meaningless_masks(masks):
    # EnhancerParams is public: () failed in training with a ZeroDivisionError, an
    # unknown kind only once its first mask was drawn.
    with pytest.raises(ValueError, match=r"^`masks` must be a non-empty selection of \('random', 'block', 'sublattice'\), "
                       rf"got {re.escape(str(tuple(masks)))}\.$"):
        EnhancerParams(masks=masks)


def test_enhancer_params_take_one_mask_kind_as_a_string():
    # A string was iterated letter by letter: 'b' is no mask kind.
    assert EnhancerParams(masks="block").masks == ("block",)


def test_spots_without_counts_warn_with_the_filter_that_leaves_them_out():
    # They were silently trained on and interpolated as spots expressing no gene.
    adata, _ = slide("square", 5, 5, 8)
    adata.layers["raw"] = adata.X.copy()
    adata.layers["raw"][[3, 7]] = 0
    message = (r"^2 of the 25 spots have no counts: they are trained on and enhanced as spots expressing no gene\. "
               r"To leave them out, pass `adata\[np\.asarray\(adata\.layers\['raw'\]\.sum\(axis=1\)\)\.ravel\(\) > 0\]`\.$")
    with pytest.warns(UserWarning, match=message):
        enhance(adata, layer="raw", **FAST)
    kept = adata[np.asarray(adata.layers["raw"].sum(axis=1)).ravel() > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert enhance(kept, layer="raw", **FAST).obs["imputed"].sum() > 0


@pytest.mark.parametrize(
    ("panel_size", "error", "message"),
    [
        (0, ValueError, r"^panel_size must be a positive finite number, got 0\.0$"),  # drew a 0 x 0 figure
        (-1.0, ValueError, r"^panel_size must be a positive finite number, got -1\.0$"),
        ("3", TypeError, r"^panel_size must be a real number, got str$"),
    ],
)
def test_plot_enhance_refuses_meaningless_panel_sizes(super_resolved, panel_size, error, message):
    _, _, out = super_resolved
    before = plt.get_fignums()
    with pytest.raises(error, match=message):
        plot_enhance(out, "gene0", panel_size=panel_size)
    assert plt.get_fignums() == before  # refused before a figure is made


def test_plot_enhance_checks_where_it_saves_before_drawing(super_resolved, tmp_path):
    # An unknown file type or a missing folder failed in savefig after drawing, leaving the figure open.
    _, _, out = super_resolved
    before = plt.get_fignums()
    with pytest.raises(ValueError, match=r"^`save` '.*panels\.xyz': matplotlib writes no 'xyz' files; use one of \["):
        plot_enhance(out, "gene0", save=tmp_path / "panels.xyz")
    with pytest.raises(ValueError, match=r"^`save` '.*panels\.png': the folder '.*missing' does not exist\.$"):
        plot_enhance(out, "gene0", save=tmp_path / "missing" / "panels.png")
    # pathlib's own TypeError named no argument
    with pytest.raises(TypeError, match=r"^save must be a path \(a string or os.PathLike\), got int$"):
        plot_enhance(out, "gene0", save=5)
    assert plt.get_fignums() == before
    plot_enhance(out, "gene0", save=tmp_path / "panels.PNG")
    assert (tmp_path / "panels.PNG").stat().st_size > 0
    plt.close("all")


def test_plot_enhance_refuses_imputed_flags_that_are_not_bools(super_resolved):
    # Strings read back from a text table: as bools both are True, and every spot was
    # drawn as a new one (the measured panels empty).
    _, _, out = super_resolved
    text = out.copy()
    text.obs["imputed"] = text.obs["imputed"].astype(str)
    with pytest.raises(ValueError, match=r"^`adata.obs\['imputed'\]` \(dtype object\) must hold True or False for every "
                       r"spot, got e\.g\. \['False', 'True'\]\.$"):
        plot_enhance(text, "gene0")
    flags = out.copy()
    flags.obs["imputed"] = flags.obs["imputed"].astype(object)  # bools kept as objects still plot
    fig = plot_enhance(flags, "gene0")
    assert len(fig.axes[0].collections[0].get_offsets()) == int((~out.obs["imputed"]).sum())
    plt.close("all")


@pytest.mark.parametrize(
    ("positions", "message"),
    [
        ([["2", "2"]], r"got dtype <U1\.$"),  # was imputed at (2, 2)
        ([[True, True]], r"got dtype bool\.$"),  # was imputed at (1, 1)
        ([2, 2], r"got shape \(2,\)\.$"),
        ([[np.nan, 2]], r"got NaN or infinite values\.$"),
    ],
)
def test_impute_positions_must_be_numbers(positions, message):
    adata, _ = slide("square", 5, 5, 8)
    adata = adata[~adata.obs_names.isin(["spot6", "spot12"])].copy()  # (1, 1) and (2, 2) are free
    wanted = r"^`positions` must be a finite \(m, 2\) array of numbers, the \(array_row, array_col\) to impute; "
    with pytest.raises(ValueError, match=wanted + message):
        enhance(adata, "impute", positions=positions, **FAST)


@pytest.mark.parametrize("n_genes", [0, 1])
def test_fewer_than_two_genes_raise(n_genes):
    # One gene was log1p(10^4) in every spot with counts: CP10k normalises over the genes given.
    adata, _ = slide("square", 5, 5, 8)
    with pytest.raises(ValueError, match=rf"^`adata` has {n_genes} gene\(s\): enhance needs at least 2, as log1p\(CP10k\) "
                       r"normalises each spot over the genes given \(one gene would be log1p\(10\^4\) in every spot"):
        enhance(adata[:, :n_genes].copy(), **FAST)
    assert enhance(adata[:, :2].copy(), **FAST).n_vars == 2


def _task_edges(radius: float, kind: str) -> int:
    """Edges of one training task of mask ``kind`` on a 10 x 10 square slide."""
    adata, _ = slide("square", 10, 10, 20)
    rc = np.column_stack([adata.obs["array_row"], adata.obs["array_col"]]).astype(float)
    trainer = EnhancerTrainer(rc, log1p_cp10k(adata.X), "square", EnhancerParams(radius=radius, n_ensemble=1), seed=0)
    hidden = draw_mask(kind, trainer.rc, trainer.pos, trainer.grid, trainer.spacing, np.random.default_rng(0))
    batch = trainer._batch([(~hidden, hidden)], trainer.pos, trainer._fit_shrinkage(np.ones(len(rc), bool)))
    return batch.edge_index.shape[1]


def test_a_radius_below_one_spacing_warns_of_the_tasks_without_edges():
    # Below 1 spacing the random and block tasks had no edge (their targets learnt
    # nothing) while sub-lattice tasks (visible spots 2 spacings apart) still had some: silently.
    assert [_task_edges(0.9, kind) for kind in ("random", "block")] == [0, 0]
    assert _task_edges(0.9, "sublattice") > 0 and _task_edges(0.4, "sublattice") == 0
    assert _task_edges(1.0, "random") > 0
    adata, _ = slide("square", 8, 8, 20)
    options = {**FAST, "epochs": 0}
    message = (
        "radius={} is below 1 spot spacing (the distance between neighbouring observed spots, the unit of "
        "radius): the training tasks of masks {} get no edges (no visible spot within radius of their hidden "
        "ones), so their targets learn nothing beyond the interpolation; 'random' and 'block' tasks need "
        "radius >= 1, 'sublattice' ones radius >= 0.5"
    )
    for radius, masks, without in ((0.9, None, "['random']"), (0.9, ("random", "block", "random"), "['random', 'block']"),
                                   (0.4, None, "['sublattice', 'random']")):
        with pytest.warns(UserWarning, match=f"^{re.escape(message.format(radius, without))}$") as caught:
            enhance(adata, "super_resolution", radius=radius, masks=masks, **options)
        assert [w.filename for w in caught] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enhance(adata, "super_resolution", radius=0.9, masks="sublattice", **options)
        enhance(adata, "super_resolution", radius=1.0, **options)


def test_plot_enhance_colour_bars_say_what_colours_the_spots(super_resolved):
    _, _, out = super_resolved
    out = out.copy()
    out.layers["raw"] = out.X.copy()
    labels = {}
    for layer in (None, "raw"):
        fig = plot_enhance(out, ["gene0", "gene1"], layer=layer)
        # The colour bars are the axes without a title (the panels have one each).
        labels[layer] = [ax.get_ylabel() for ax in fig.axes if not ax.get_title()]
        plt.close(fig)
    assert labels == {None: ["log1p(CP10k)"] * 2, "raw": ["raw"] * 2}


def test_spots_with_counts_is_the_same_for_sparse_and_dense_counts():
    # --drop-empty reads it without making the counts dense: a stored 0 is no count, NaN is
    # one (read_counts then refuses it rather than a filter hiding it).
    from stgraph.spots._expression import spots_with_counts

    dense = np.array([[0, 0], [0, 3], [np.nan, 0], [0, 0]], dtype=np.float32)
    stored_zero = scipy.sparse.csr_matrix((np.array([0, 3, np.nan], np.float32), ([0, 1, 2], [1, 1, 0])), shape=(4, 2))
    adata = ad.AnnData(dense, layers={"sparse": stored_zero})
    for layer in (None, "sparse"):
        np.testing.assert_array_equal(spots_with_counts(adata, layer), [False, True, True, False])
    with pytest.raises(ValueError, match=r"^Layer 'raw' not found in `adata.layers` \(\['sparse'\]\)\.$"):
        spots_with_counts(adata, "raw")


def test_copies_of_the_pixel_coordinates_in_obs_are_filled_for_new_spots():
    # The legacy ST sets keep obsm['spatial'] in obs['pixel_x'] / ['pixel_y'] too: the new
    # spots had NaN there, though their pixel coordinates are in obsm['spatial'].
    adata, _ = slide("square", 4, 4, 10)
    adata.obs["pixel_x"] = adata.obsm["spatial"][:, 0]
    adata.obs["pixel_y"] = adata.obsm["spatial"][:, 1].astype(np.float32).astype(float)  # not an exact copy
    adata.obs["depth"] = np.arange(adata.n_obs, dtype=float)
    out = enhance(adata, "super_resolution", **{**FAST, "epochs": 0})
    new = out.obs["imputed"].to_numpy()
    assert new.sum() == 33
    np.testing.assert_array_equal(out.obs["pixel_x"].to_numpy(), out.obsm["spatial"][:, 0])
    assert out.obs.loc[new, ["pixel_y", "depth"]].isna().all().all()
    np.testing.assert_array_equal(out.obs.loc[~new, "pixel_y"], adata.obs["pixel_y"])
