"""solu_repro: an executable reproduction of "Softmax Linear Units" (Elhage et al., 2022)."""

__version__ = "0.1.0"
