"""Layout of the stgraph.pl plots: what a figure reader needs (all text inside the
figure, axes in µm with equal aspect and y down, legends beside the data)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from stgraph import pl, tl  # noqa: E402
from stgraph.datasets import simulate  # noqa: E402
from stgraph.localization import PATTERNS  # noqa: E402


@pytest.fixture(scope="module")
def analysed():
    sdata, _ = simulate(6, 12, n_domains=2, mean_counts=20.0, seed=3)
    tl.localization(sdata, n_boot=5, seed=0)
    tl.colocalization(sdata, radius=1.0)
    tl.domains(sdata, radius=3.0, n_domains=2, seed=0)
    return sdata


def _texts_outside(fig) -> list[str]:
    """The visible, non-empty texts of ``fig`` that reach beyond it (1 px of slack)."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    box = fig.bbox
    outside = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.y0 < box.y0 - 1 or extent.x1 > box.x1 + 1 or extent.y1 > box.y1 + 1:
            outside.append(text.get_text())
    return outside


PLOTS = {
    "composition by gene": lambda s, **options: pl.localization_composition(s, top=None, **options),
    "composition by cell": lambda s, **options: pl.localization_composition(s, by="cell", **options),
    "transcripts by pattern": lambda s, **options: pl.localization_transcripts(s, **options),
    "transcripts by p_nuclear": lambda s, **options: pl.localization_transcripts(s, "p_nuclear", **options),
    "heatmap": lambda s, **options: pl.colocalization_heatmap(s, top=5, **options),
    "network": lambda s, **options: pl.colocalization_network(s, fdr=None, top=10, **options),
    "domains": lambda s, **options: pl.domains(s, **options),
}


@pytest.mark.parametrize("name", PLOTS)
def test_a_new_figure_holds_all_its_labels_and_legends(analysed, name):
    # The default layout cut off the rotated gene labels and the legends beside the axes.
    ax = PLOTS[name](analysed)
    assert _texts_outside(ax.figure) == []
    plt.close(ax.figure)


@pytest.mark.parametrize("name", PLOTS)
def test_an_ax_that_is_no_axes_is_refused_by_name(analysed, name):
    # The axes array of plt.subplots(1, 2) failed deep in the drawing, after the work:
    # "'numpy.ndarray' object has no attribute 'imshow'" (or 'scatter', 'bar', ...).
    fig, axes = plt.subplots(1, 2)
    plot = PLOTS[name]
    with pytest.raises(TypeError, match=r"^ax must be a matplotlib Axes or None, got ndarray: pass one of them, e\.g\. axes\[0\]$"):
        plot(analysed, ax=axes)
    with pytest.raises(TypeError, match=r"^ax must be a matplotlib Axes or None, got Figure$"):
        plot(analysed, ax=fig)
    assert plot(analysed, ax=axes[1]) is axes[1]
    plt.close(fig)


@pytest.mark.parametrize("plot", [pl.localization_transcripts, pl.domains])
def test_spatial_plots_are_in_um_with_equal_aspect_and_y_down(analysed, plot):
    fig, ax = plt.subplots()
    plot(analysed, ax=ax)
    # y down, as squidpy, spatialdata-plot and pl.enhance draw images; x and y had no unit.
    assert (ax.get_aspect(), ax.yaxis_inverted(), ax.get_xlabel(), ax.get_ylabel()) == (1.0, True, "x (µm)", "y (µm)")
    plot(analysed, ax=ax)  # drawn twice into one axes, still y down
    assert ax.yaxis_inverted()
    plt.close(fig)


def test_legends_are_titled_and_beside_the_data(analysed):
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    pl.localization_transcripts(analysed, ax=axes[0])
    pl.domains(analysed, ax=axes[1])
    fig.canvas.draw()
    for ax, title in zip(axes, ("top pattern", "domain")):
        legend = ax.get_legend()
        # pl.domains put its legend in the upper right corner, over molecules and outlines.
        assert (legend.get_title().get_text(), legend.get_window_extent().x0 >= ax.get_window_extent().x1) == (title, True)
    plt.close(fig)


def test_a_pattern_has_one_colour_in_every_localization_plot(analysed):
    bars = pl.localization_composition(analysed)
    dots = pl.localization_transcripts(analysed)
    colours = [
        {text.get_text(): to_hex(handle.get_facecolor()[0] if hasattr(handle, "get_offsets") else handle.get_facecolor())
         for text, handle in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles) if text.get_text() in PATTERNS}
        for ax in (bars, dots)
    ]
    assert colours[0] == colours[1] and len(colours[0]) >= 2
    plt.close("all")



def _pairs(rows) -> "ColocalizationResult":
    """A colocalization result of the pairs ``rows`` of ``(gene_a, gene_b, score)``."""
    import pandas as pd

    from stgraph.coloc import ColocalizationResult

    table = pd.DataFrame(rows, columns=["gene_a", "gene_b", "score"])
    table["fdr"] = 0.01
    genes = sorted(set(table["gene_a"]) | set(table["gene_b"]))
    for column in ("gene_a", "gene_b"):
        table[column] = pd.Categorical(table[column], categories=genes)
    return ColocalizationResult(table=table, genes=pd.Index(genes))


def test_heatmap_draws_pairs_without_edges_apart_from_a_zero_score():
    registered = plt.get_cmap("RdBu_r")(np.linspace(0, 1, 5), bytes=True).copy()
    # a-b scores 0, a-c and b-c share no edge (NaN): both were drawn white.
    result = _pairs([("a", "a", 1.0), ("a", "b", 0.0), ("b", "a", 0.0), ("b", "b", -1.0), ("c", "c", 0.5)])
    ax = pl.colocalization_heatmap(result, genes=["a", "b", "c"])
    image = ax.get_images()[0]
    rgba = image.to_rgba(image.get_array())
    zero, missing = rgba[0, 1], rgba[0, 2]
    assert (to_hex(zero), to_hex(missing)) == ("#f7f6f6", "#bfbfbf")
    assert ax.figure.axes[1].get_ylabel() == "score (grey: pair shares no edge)"
    # matplotlib's registered map is not changed: its bad colour stays transparent.
    assert (plt.get_cmap("RdBu_r")(np.linspace(0, 1, 5), bytes=True) == registered).all()
    assert plt.get_cmap("RdBu_r").get_bad().tolist() == [0.0, 0.0, 0.0, 0.0]
    plt.close(ax.figure)


def _ciede2000(colours, others) -> np.ndarray:
    """CIEDE2000 distances, ``colours`` x ``others``."""
    from matplotlib.colors import to_rgb
    from skimage.color import deltaE_ciede2000, rgb2lab

    lab = [rgb2lab(np.array([[to_rgb(c) for c in group]]))[0] for group in (colours, others)]
    return deltaE_ciede2000(lab[0][:, None], lab[1][None])


def test_default_domain_colours_are_apart_from_the_pattern_colours(analysed):
    import re

    from stgraph.pl._localization import NOT_SCORED_COLOR, PATTERN_COLORS

    # tab10 gave domains 0, 2 and 3 the colours of "nuclear", "cytoplasmic" and "cell_edge".
    ax = pl.domains(analysed)
    drawn = [to_hex(handle.get_color()) for handle in ax.get_legend().legend_handles]
    assert drawn == ["#e69f00", "#56b4e9"]
    from stgraph.pl._domains import DOMAIN_COLOURS

    palette = [to_hex(c) for c in DOMAIN_COLOURS.colors]
    to_patterns = _ciede2000(palette, [*PATTERN_COLORS.values(), NOT_SCORED_COLOR])
    among = _ciede2000(palette, palette)[~np.eye(len(palette), dtype=bool)]
    assert (len(palette), round(float(to_patterns.min()), 1), round(float(among.min()), 1)) == (7, 20.2, 21.7)
    # Past seven domains the colours repeat, with the warning of a short qualitative map.
    sdata, _ = simulate(3, 9, n_domains=2, seed=0)
    tl.domains(sdata, radius=3.0, n_domains=8, seed=0, key_added="eight")
    with pytest.warns(UserWarning, match=re.escape(
        "8 domains but the default palette has 7 colours: domain 7 and above repeat the colours of the first ones"
    )):
        pl.domains(sdata, key="eight", shapes_key=None)
    plt.close("all")


def test_network_components_are_laid_out_apart_and_the_same_every_time():
    # One spring layout of the whole graph squeezed two-gene components onto their labels.
    chain = [("GENE_A%d" % k, "GENE_A%d" % (k + 1), 1.0 + k) for k in range(5)]
    clique = [("CLIQUE%d" % i, "CLIQUE%d" % j, 2.0) for i in range(6) for j in range(i + 1, 6)]
    pairs = [("TNFRSF%d" % k, "PECAM%d" % k, 3.0 - 0.1 * k) for k in range(12)]
    result = _pairs(chain + clique + pairs)
    component = {}
    for k, rows in enumerate([chain, clique] + [[p] for p in pairs]):
        component.update({gene: k for a, b, _ in rows for gene in (a, b)})
    ax = pl.colocalization_network(result, fdr=None, top=100)
    renderer = ax.figure.canvas.get_renderer()
    boxes = [(component[t.get_text()], t.get_window_extent(renderer)) for t in ax.texts]
    assert len(boxes) == len(component) == 36
    overlapping = sorted(
        (i, j) for n, (i, a) in enumerate(boxes) for j, b in boxes[n + 1:] if i != j and a.overlaps(b)
    )
    assert overlapping == []
    nodes = ax.collections[-1].get_offsets().copy()
    again = pl.colocalization_network(result, fdr=None, top=100)
    assert np.array_equal(again.collections[-1].get_offsets(), nodes)
    plt.close("all")


def test_network_labels_do_not_overlap_in_chains_and_pairs():
    # A spring layout of the whole graph drew a 13-gene chain and two-gene components
    # with their labels on top of one another (8 overlapping label pairs here).
    chain = [("GENE_A%d" % k, "GENE_A%d" % (k + 1), 1.0 + k) for k in range(12)]
    pairs = [("TNFRSF%d" % k, "PECAM%d" % k, 3.0 - 0.1 * k) for k in range(12)]
    ax = pl.colocalization_network(_pairs(chain + pairs), fdr=None, top=100)
    renderer = ax.figure.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
    assert len(boxes) == 37
    assert [(a, b) for n, (a, x) in enumerate(boxes) for b, y in boxes[n + 1:] if x.overlaps(y)] == []
    plt.close("all")
