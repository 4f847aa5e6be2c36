"""The ``stgraph`` console command: ``demo`` (the embedded sample), ``run`` (your
transcripts) and ``enhance`` (your Visium / ST spots)."""
from ._main import main
from ._spots import enhance
from ._transcripts import FORMATS, TOOLS, demo, run

__all__ = ["FORMATS", "TOOLS", "demo", "enhance", "main", "run"]
