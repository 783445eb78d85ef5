"""The ``slm`` command line (see :mod:`cli.main`)."""
from .main import main

__all__ = ["main"]
