"""suanli: the control plane of an accelerator alliance."""

__version__ = "0.1.0"
