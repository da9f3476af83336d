"""symbiotic: hardware-guided symbiotic training of compact, accurate and fast LSTMs."""

import logging

__version__ = "0.1.0"

# torch.utils.cpp_extension (imported by torch.utils.benchmark and by the native runtime's build)
# warns "No CUDA runtime is found" on every CPU-only machine: noise for a CPU run, and the native
# kernel is CPU-only. A filter, not a level (torch's logging setup resets levels); set here, before
# anything imports it.
logging.getLogger("torch.utils.cpp_extension").addFilter(lambda r: "No CUDA runtime" not in r.getMessage())
