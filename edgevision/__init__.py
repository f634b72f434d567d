"""edgevision: custom image classification at the edge."""

__version__ = "0.1.0"
