"""symbiotic: hardware-guided symbiotic training of compact, accurate and fast LSTMs."""

__version__ = "0.1.0"
