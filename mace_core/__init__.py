"""mace_core: training and evaluation core of the MACE infrared-visible re-identification study."""

__version__ = "0.1.0"
