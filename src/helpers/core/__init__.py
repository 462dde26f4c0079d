"""Configuration, the layout of every path, atomic IO, grids, vectors, errors and the shared CLI."""
