"""prsnl: save, list, watch and fetch videos of a PRSNL Media install from the terminal."""

__version__ = "0.1.0"
