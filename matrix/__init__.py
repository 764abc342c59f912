"""pull-matrix: which Docker engine versions can pull which tags of an image, on which registry."""

__version__ = "0.1.0"

__all__ = ["__version__"]
