"""Sinusoidal positional encoding of transcript coordinates.

A transcript at position :math:`p = (x, y[, z])` (µm) is encoded relative to an
origin :math:`o` (the centroid of its cell when cells are known, else the centroid
of its tile or graph; see :func:`transcript_origin`). With ``n`` axes, each axis gets
``d_axis = 2 * floor(d_model / 2n)`` channels (equal sine and cosine halves; when
``d_model`` is not a multiple of ``2n``, e.g. 64 in 3D, the last
``d_model - n * d_axis`` channels are zero) and, for :math:`u = (p_a - o_a) / s` (``s`` the
length scale ``pe_scale`` in µm) and :math:`i = 0, \\dots, d_{axis}/2 - 1`,

.. math::

    \\mathrm{PE}_a(u) = \\big[\\sin(u / b^{2i/d_{axis}})\\big]_i \\,\\|\\,
                       \\big[\\cos(u / b^{2i/d_{axis}})\\big]_i,
    \\qquad \\mathrm{PE}(p) = \\mathrm{PE}_x \\,\\|\\, \\mathrm{PE}_y \\,[\\|\\, \\mathrm{PE}_z]

with base :math:`b = 10000`. The shortest wavelength is :math:`2\\pi s` and the
longest :math:`2\\pi s\\, b^{1 - 2/d_{axis}}`. Raw µm (``s = 1``) would put the
shortest wavelength at 6.3 µm, so that positions within a micrometre look almost
the same; the default ``s = 0.1`` µm (about one imaging pixel) resolves 0.6 µm, and
with ``d_model = 64`` nine of the sixteen frequencies per axis have wavelengths
between 0.63 µm and 63 µm, from sub-µm to whole-cell structure.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import check_int, check_real

#: Default length scale of the positional encoding, in µm.
DEFAULT_PE_SCALE = 0.1
#: Default frequency base of the positional encoding.
DEFAULT_PE_BASE = 10000.0


def check_pe_width(d_model: int, n_dims: int) -> None:
    """Check that ``d_model`` is an integer holding one sine and one cosine per axis.

    Raises
    ------
    TypeError
        If ``d_model`` is not an integer.
    ValueError
        If ``n_dims`` is not 2 or 3 or ``d_model < 2 * n_dims``.
    """
    if n_dims not in (2, 3):
        raise ValueError(f"positions must have 2 or 3 dimensions, got n_dims={n_dims}")
    if d_model < 2 * n_dims:
        raise ValueError(
            f"d_model={d_model} must be at least 2 * n_dims = {2 * n_dims} "
            "so that each axis gets a sine and a cosine channel"
        )
    check_int("d_model", d_model)  # a float width passed and failed in torch's reshape


def check_pe_frequencies(scale: float, base: float, prefix: str = "") -> tuple[float, float]:
    """``scale`` and ``base`` as floats after checking that they are finite, ``scale > 0``
    and ``base > 1`` (``prefix`` starts their names in the messages, e.g. ``"pe_"``).

    Raises
    ------
    TypeError
        If either is not a real number.
    ValueError
        If either is NaN or infinite (an infinite scale encodes every position
        alike), ``scale <= 0`` or ``base <= 1``.
    """
    scale, base = check_real(f"{prefix}scale", scale), check_real(f"{prefix}base", base)
    if base <= 1:
        raise ValueError(f"{prefix}base must be > 1, got {base}")
    return scale, base


def sinusoidal_position_encoding(
    rel_pos: Tensor,
    d_model: int,
    *,
    scale: float = DEFAULT_PE_SCALE,
    base: float = DEFAULT_PE_BASE,
) -> Tensor:
    """Encode relative coordinates with per-axis sine/cosine features.

    Parameters
    ----------
    rel_pos
        ``[N, n_dims]`` coordinates relative to their origin, in µm.
    d_model
        Width of the encoding, at least ``2 * n_dims``.
    scale
        Length scale in µm: coordinates are divided by it before encoding.
    base
        Frequency base ``b`` of the formula in the module docstring.

    Returns
    -------
    ``[N, d_model]`` tensor laid out as ``[sin x | cos x | sin y | cos y (| sin z | cos z) | 0]``,
    the zero block holding the ``d_model mod 2 * n_dims`` channels left over.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_pe_width` and :func:`check_pe_frequencies`, or if ``rel_pos``
        is not a tensor (TypeError) or not two-dimensional.
    """
    if not isinstance(rel_pos, Tensor):  # a NumPy array failed on .dim()
        raise TypeError(f"rel_pos must be a tensor, got {type(rel_pos).__name__}")
    if rel_pos.dim() != 2:
        raise ValueError(f"rel_pos must be [N, n_dims], got shape {tuple(rel_pos.shape)}")
    n_dims = rel_pos.size(1)
    check_pe_width(d_model, n_dims)
    scale, base = check_pe_frequencies(scale, base)
    d_axis = 2 * (d_model // (2 * n_dims))
    exponents = torch.arange(0, d_axis, 2, dtype=torch.float64, device=rel_pos.device) / d_axis
    inv_freq = (1.0 / scale) * torch.exp(-math.log(base) * exponents)
    # float64 phases: coordinates of hundreds of µm over 0.1 µm scales lose digits in float32.
    phase = rel_pos.to(torch.float64).unsqueeze(-1) * inv_freq  # [N, n_dims, d_axis / 2]
    enc = torch.cat([phase.sin(), phase.cos()], dim=-1)  # [N, n_dims, d_axis]
    enc = torch.nn.functional.pad(enc.reshape(rel_pos.size(0), n_dims * d_axis), (0, d_model - n_dims * d_axis))
    dtype = rel_pos.dtype if rel_pos.is_floating_point() else torch.get_default_dtype()
    return enc.to(dtype)


class SinusoidalPositionalEncoding(torch.nn.Module):
    """Module form of :func:`sinusoidal_position_encoding` (no parameters).

    Parameters
    ----------
    d_model
        Width of the encoding, at least ``2 * n_dims``.
    n_dims
        Number of spatial axes, 2 or 3.
    scale
        Length scale in µm.
    base
        Frequency base.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_pe_width` and :func:`check_pe_frequencies`.
    """

    def __init__(
        self,
        d_model: int,
        n_dims: int = 2,
        *,
        scale: float = DEFAULT_PE_SCALE,
        base: float = DEFAULT_PE_BASE,
    ) -> None:
        super().__init__()
        check_pe_width(d_model, n_dims)
        self.d_model = d_model
        self.n_dims = n_dims
        self.scale, self.base = check_pe_frequencies(scale, base)

    def forward(self, rel_pos: Tensor) -> Tensor:
        """Encode positions, as :func:`sinusoidal_position_encoding`.

        Parameters
        ----------
        rel_pos
            ``[N, n_dims]`` coordinates relative to their origin, in µm.

        Raises
        ------
        ValueError
            If ``rel_pos`` is not of shape ``[N, n_dims]``.
        """
        if rel_pos.dim() != 2 or rel_pos.size(1) != self.n_dims:
            raise ValueError(
                f"expected positions of shape [N, {self.n_dims}], got {tuple(rel_pos.shape)}"
            )
        return sinusoidal_position_encoding(rel_pos, self.d_model, scale=self.scale, base=self.base)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.d_model}, n_dims={self.n_dims}, "
            f"scale={self.scale}, base={self.base})"
        )


def _group_centroids(pos: Tensor, key: Tensor) -> Tensor:
    """Centroid of the group of every row of ``pos``; a group is one value of ``key`` (``[M]``)."""
    _, group = torch.unique(key, return_inverse=True)
    n_groups = int(group.max()) + 1
    sums = pos.new_zeros(n_groups, pos.size(1)).index_add_(0, group, pos)
    counts = torch.bincount(group, minlength=n_groups).unsqueeze(1)
    return (sums / counts)[group]


def transcript_origin(
    pos: Tensor,
    cell: Tensor | None = None,
    batch: Tensor | None = None,
    *,
    tile_size: float | None = None,
) -> Tensor:
    """Per-transcript origin of the positional encoding.

    Transcripts of a cell (``cell >= 0``) get their cell's centroid. Unassigned
    transcripts (``cell == -1``, or all when ``cell`` is None) get the centroid of
    the unassigned transcripts of their graph (``batch`` tells the graphs apart);
    with ``tile_size``, their x and y are instead those of the centre of their
    square in a grid of side ``tile_size`` µm anchored at x = y = 0. A cell is one
    cell id within one graph: graphs of a batch may reuse cell ids.

    Parameters
    ----------
    pos
        ``[N, n_dims]`` coordinates in µm.
    cell
        ``[N]`` cell index, −1 for unassigned transcripts.
    batch
        ``[N]`` graph index of each transcript in a mini-batch; all in one graph when None.
    tile_size
        Side in µm of the tiles that give unassigned transcripts their origin.

    Returns
    -------
    ``[N, n_dims]`` float64 origins.

    Raises
    ------
    TypeError
        If ``pos``, ``cell`` or ``batch`` is not a tensor, or ``cell`` or ``batch``
        does not hold integers.
    ValueError
        If ``pos`` is not ``[N, n_dims]``, ``cell`` or ``batch`` is not ``[N]``, or
        ``tile_size`` (used only when some transcript is unassigned) is not a positive
        finite number.
    """
    # NumPy arrays failed deep inside ("'int' object is not callable" for pos.size(0)).
    for name, value in (("pos", pos), ("cell", cell), ("batch", batch)):
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(value).__name__}")
    if pos.dim() != 2:
        raise ValueError(f"pos must be [N, n_dims], got shape {tuple(pos.shape)}")
    n = pos.size(0)
    pos = pos.to(torch.float64)
    origin = torch.empty_like(pos)
    for name, index in (("cell", cell), ("batch", batch)):
        if index is not None and index.shape != (n,):
            raise ValueError(f"{name} must have shape [{n}], got {tuple(index.shape)}")
        if index is not None and (index.is_floating_point() or index.is_complex() or index.dtype == torch.bool):
            # cast to int64 below, ids 0.5 and 0 would be one cell
            raise TypeError(f"{name} must hold integer ids, got {index.dtype}")
    graph = torch.zeros(n, dtype=torch.long, device=pos.device) if batch is None else batch
    assigned = torch.zeros(n, dtype=torch.bool, device=pos.device) if cell is None else cell >= 0
    if assigned.any():
        # One integer per (graph, cell): torch.unique over column pairs is ~30x slower.
        cells = cell[assigned].long()
        key = graph[assigned].long() * (int(cells.max()) + 1) + cells
        origin[assigned] = _group_centroids(pos[assigned], key)
    free = ~assigned
    if free.any():
        origin[free] = _group_centroids(pos[free], graph[free])
        if tile_size is not None:
            tile_size = check_real("tile_size", tile_size)
            origin[free, :2] = (torch.floor(pos[free, :2] / tile_size) + 0.5) * tile_size
    return origin
