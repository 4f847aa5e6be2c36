"""The input formats of :func:`stgraph.io.read`, in a module that imports nothing, so
that the console command can offer them without loading a reader."""

INPUT_FORMATS = ("xenium", "merscope", "cosmx", "zarr")
