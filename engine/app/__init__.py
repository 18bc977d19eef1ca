"""The top layer: composition root, command line, commands and the Python API; the only
layer that may import every other."""
