"""The argument parser of the ``stgraph`` console command."""
from __future__ import annotations

import argparse
import sys
import warnings

from .. import __version__
from ._spots import enhance
from ._steps import print_summary
from ._transcripts import DEMO_DOMAINS, DOMAIN_RADIUS, FORMATS, TOOLS, demo, run


def _radius(text: str) -> float:
    try:
        from ..graph._query import check_graph_radius

        return check_graph_radius(float(text), "radius")
    except ValueError as err:  # float() or the check: argparse turns it into a usage error
        raise argparse.ArgumentTypeError(str(err)) from None


def _tools(text: str) -> tuple[str, ...]:
    tools = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [t for t in tools if t not in TOOLS]
    if unknown or not tools:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(TOOLS)} (comma-separated), got {text!r}")
    return tuple(t for t in TOOLS if t in tools)


def _int_at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1)


def _seed(text: str) -> int:
    """An argparse type: a seed tl.enhance takes, an integer in [0, 2**32 - 1]."""
    from .._validation import check_seed

    try:
        return check_seed(int(text))
    except ValueError:  # int() or the check, whose message names the Python argument
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32 - 1], got {text!r}") from None


def _device(text: str) -> str:
    """An argparse type: a device tl.enhance takes (cpu, cuda or auto), checked before
    the input is read (tl.enhance checks it after)."""
    from ..models.trainer import NO_CUDA, resolve_device

    try:
        resolve_device(text)
    except ValueError as err:
        if str(err) == NO_CUDA:  # it names the Python argument
            raise argparse.ArgumentTypeError(f"{text!r} needs CUDA, which this machine does not have; give cpu") from None
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _scale(text: str) -> float:
    """An argparse type: µm per unit, a positive finite number."""
    from .._validation import check_real

    try:
        return check_real("scale", float(text))
    except ValueError:  # float() or the check; the message names the unit, as the flag's help does
        raise argparse.ArgumentTypeError(f"must be a positive finite number (µm per unit), got {text!r}") from None


def _too_large(parser: argparse.ArgumentParser, radius: float, err) -> None:
    """Exit with the radius graph's memory refusal and the one remedy the command has:
    the error's own advice names Python arguments the command does not offer."""
    parser.error(f"--radius {radius:g}: {err.reason}; give a smaller --radius")


def _add_graph_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--radius", type=_radius, default=1.0, help="radius in µm (default 1.0)")
    parser.add_argument(
        "--within", choices=("all", "cell"), default="all",
        help="'all' (default) joins every pair within the radius, 'cell' only pairs of the same cell",
    )


def main(argv: list[str] | None = None) -> int:
    """The ``stgraph`` console command: parse ``argv``, run the subcommand, print its summary.

    Parameters
    ----------
    argv
        The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    0 on success. A usage error exits through :class:`SystemExit` with status 2 and
    argparse's usage and error message on stderr; so does a radius too large for the
    memory (``demo``, ``run``) and a ValueError of ``run`` or ``enhance`` (a TypeError
    too for ``enhance``) about the input or the options. Warnings are printed as
    one ``stgraph: warning: ...`` line each on stderr, without the source line that
    Python's default format shows; a library's own warning category is named with its
    package, e.g. ``stgraph: warning from sklearn (ConvergenceWarning): ...``.
    """
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _command(argv)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning for the command's user: the message, not the Python line raising
    it, and the package whose warning it is when not stgraph's (a library it uses)."""
    package = category.__module__.split(".")[0]
    source = "" if package in ("stgraph", "builtins") else f" from {package}"
    kind = "" if category is UserWarning else f" ({category.__name__})"
    print(f"stgraph: warning{source}{kind}: {message}", file=sys.stderr if file is None else file)


def _command(argv: list[str] | None) -> int:
    """:func:`main` without its warning format."""
    parser = argparse.ArgumentParser(
        prog="stgraph", description="stgraph: transcript-level spatial transcriptomics on PyTorch Geometric."
    )
    parser.add_argument("--version", action="version", version=f"stgraph {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo",
        help="build the transcript graph of the embedded MERFISH U2-OS sample and run the task heads on it",
    )
    _add_graph_options(demo_parser)
    demo_parser.add_argument(
        "--graph-only", action="store_true",
        help="stop after the graph (skip localization, colocalization and domains)",
    )
    demo_parser.add_argument(
        "--drop-duplicates", action="store_true",
        help="leave out the molecules called twice (same gene within 0.1 µm; most of the sample's rows)",
    )
    run_parser = commands.add_parser(
        "run",
        help="read your data (Xenium, MERSCOPE, CosMx folder or SpatialData .zarr), run the task heads, "
        "write the result as a SpatialData .zarr store",
    )
    run_parser.add_argument("input", help="Xenium output folder, MERSCOPE region folder, CosMx flat files, or .zarr")
    run_parser.add_argument("--out", required=True,
                            help="zarr store to write (a new one named *.zarr), outside the input (an existing one only "
                            "with --overwrite)")
    run_parser.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                            help="input format (default: recognised by the files in the folder)")
    _add_graph_options(run_parser)
    run_parser.add_argument("--tools", type=_tools, default=TOOLS,
                            help=f"comma-separated task heads to run (default {','.join(TOOLS)}); cell outlines "
                            "missing from the data are drawn around each cell's molecules for localization")
    run_parser.add_argument("--n-domains", type=_positive_int, default=DEMO_DOMAINS,
                            help=f"number of subcellular domains (default {DEMO_DOMAINS}; within-cell radius "
                            f"{DOMAIN_RADIUS:g} µm)")
    run_parser.add_argument("--pixel-size", type=_scale, default=None,
                            help="µm per coordinate unit, for CosMx (default 0.18) and .zarr stores (default 1; "
                            "z too, unless --z-step)")
    run_parser.add_argument("--z-step", type=_scale, default=None,
                            help="µm per unit of z (between z-planes), for MERSCOPE (default 1.5), CosMx "
                            "(default 0.8) and .zarr stores (default: --pixel-size)")
    run_parser.add_argument("--z", default=None, metavar="COLUMN",
                            help=".zarr stores: the points' column of the depth, where their axes are x and y only "
                            "(e.g. global_z of spatialdata-io's MERSCOPE points), in units of --z-step")
    run_parser.add_argument("--points", default=None,
                            help="points element of a .zarr store holding the molecules (default transcripts)")
    run_parser.add_argument("--drop-controls", action="store_true", help="leave control probes out")
    run_parser.add_argument("--drop-z-duplicates", action="store_true",
                            help="CosMx: leave out molecules detected again in the next z-plane")
    run_parser.add_argument("--overwrite", action="store_true", help="replace an existing --out zarr store")
    enhance_parser = commands.add_parser(
        "enhance",
        help="impute or super-resolve (x2) the spots of a Visium / ST .h5ad, write a new .h5ad",
    )
    enhance_parser.add_argument("input", help=".h5ad of spots with obs array_row / array_col, obsm['spatial'], counts")
    enhance_parser.add_argument("--out", required=True, help=".h5ad file to write (an existing one only with --overwrite)")
    enhance_parser.add_argument("--mode", choices=("super_resolution", "impute"), default="super_resolution",
                                help="super_resolution (default): the x2 sub-lattice; impute: the holes in the tissue")
    enhance_parser.add_argument("--grid", choices=("hexagonal", "square"), default=None,
                                help="lattice (default: detected from the coordinates)")
    enhance_parser.add_argument("--layer", default=None, help="layer holding the raw counts (default X)")
    enhance_parser.add_argument("--library", default=None, metavar="ID",
                                help="enhance only the spots of this library (of the obs column of the library ids "
                                "of uns['spatial']); the output holds only those")
    enhance_parser.add_argument("--tissue-only", action="store_true",
                                help="enhance only the spots with obs['in_tissue'] == 1; the output holds only those")
    enhance_parser.add_argument("--drop-empty", action="store_true",
                                help="leave out the spots without counts (in X or --layer); the output holds only "
                                "the others")
    enhance_parser.add_argument("--max-gap-size", type=_positive_int, default=None,
                                help="--mode impute: fill only holes of at most this many spots (default: every hole)")
    enhance_parser.add_argument("--epochs", type=_int_at_least(0), default=None,
                                help="training epochs (default 10; 0: the calibrated interpolation alone)")
    enhance_parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    # No string default: argparse would check it with its type, importing torch for every call.
    enhance_parser.add_argument("--device", type=_device, default=None, help="cpu (default), cuda or auto")
    enhance_parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = parser.parse_args(argv)
    from ..graph import GraphTooLargeError

    if args.command == "enhance":
        options = {"grid": args.grid, "layer": args.layer, "seed": args.seed, "device": args.device or "cpu"}
        if args.max_gap_size is not None:
            if args.mode != "impute":  # tl.enhance refuses it in its argument names, after reading the input
                enhance_parser.error(f"--max-gap-size is only used with --mode impute, not --mode {args.mode}")
            options["max_gap_size"] = args.max_gap_size
        if args.epochs is not None:
            options["epochs"] = args.epochs
        try:
            summary = enhance(args.input, args.out, mode=args.mode, options=options, library=args.library,
                              tissue_only=args.tissue_only, drop_empty=args.drop_empty, overwrite=args.overwrite)
        except (TypeError, ValueError) as err:
            enhance_parser.error(str(err))
        print_summary(summary)
        return 0

    if args.command == "demo":
        try:
            summary = demo(args.radius, args.within, tasks=not args.graph_only, drop_duplicates=args.drop_duplicates)
        except GraphTooLargeError as err:  # a radius too large for this machine: a usage error
            _too_large(demo_parser, args.radius, err)
    else:
        options = {"drop_controls": args.drop_controls}
        if args.drop_z_duplicates:
            options["drop_z_duplicates"] = True
        for option in ("pixel_size", "z_step"):
            if getattr(args, option) is not None:
                options[option] = getattr(args, option)
        for option, value in (("points_key", args.points), ("z", args.z)):
            if value is not None:
                options[option] = value
        try:
            summary = run(args.input, args.out, format=args.format, radius=args.radius, within=args.within,
                          tools=args.tools, n_domains=args.n_domains, options=options, overwrite=args.overwrite)
        except GraphTooLargeError as err:
            _too_large(run_parser, args.radius, err)
        except ValueError as err:  # unreadable input, an existing --out, data the tools refuse
            run_parser.error(str(err))
    print_summary(summary)
    return 0
