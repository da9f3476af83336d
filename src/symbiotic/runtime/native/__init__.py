"""The compiled runtime, built with ``torch.utils.cpp_extension`` on first use: the layer
(``hlstm.cpp``: input product and time loop) and the decoder's CSR product (``csr_mm.cpp``).

    python -m symbiotic.runtime.native        # build now (scripts/setup does), print where

The build goes to ``SYMBIOTIC_NATIVE_BUILD`` (default: ``.native-build`` beside the package's
source tree, ignored by git) and is compiled for this CPU (``-march=native``), so a copy of
it must not travel to another machine. :func:`load` raises a one-line :class:`UserError` that
says what is missing when it cannot build; ``SYMBIOTIC_RUNTIME=torch`` selects the torch
path instead, knowingly (:func:`wanted`).
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import torch
from torch import Tensor

from symbiotic.errors import UserError

__all__ = ["wanted", "runs", "runs_on", "build_dir", "load", "hlstm_layer", "csr_mm"]

SOURCES = [Path(__file__).with_name("hlstm.cpp"), Path(__file__).with_name("csr_mm.cpp")]
RUNTIMES = ("native", "torch")


def wanted() -> bool:
    """True unless the user chose the torch path (``SYMBIOTIC_RUNTIME=torch``)."""
    choice = os.environ.get("SYMBIOTIC_RUNTIME", "native")
    if choice not in RUNTIMES:
        raise UserError(f"SYMBIOTIC_RUNTIME is '{choice}'", f"set it to one of: {', '.join(RUNTIMES)}")
    return choice == "native"


def runs(x: Tensor) -> bool:
    """Whether the native layer runs on activations ``x``: :func:`runs_on` their device, float32."""
    return x.dtype == torch.float32 and runs_on(x.device)


def runs_on(device: torch.device) -> bool:
    """Whether the native layer runs on ``device``: wanted, and the CPU (the kernel's one device;
    CUDA takes the torch path, which is its fast one)."""
    return device.type == "cpu" and wanted()


def build_dir() -> Path:
    default = Path(__file__).resolve().parents[4] / ".native-build"
    return Path(os.environ.get("SYMBIOTIC_NATIVE_BUILD", default))


@functools.cache
def load():
    """The compiled module (built once per source change, then loaded from the build folder)."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        raise UserError("the native runtime needs a C++ compiler and none was found",
                        "install one (Debian: apt-get install g++) or set SYMBIOTIC_RUNTIME=torch")
    from torch.utils import cpp_extension

    folder = build_dir()
    folder.mkdir(parents=True, exist_ok=True)
    flags = ["-O3", "-march=native", "-fopenmp", "-ffast-math"]  # -ffast-math: vector expf (libmvec)
    try:
        return cpp_extension.load("symbiotic_native", [str(s) for s in SOURCES], extra_cflags=flags,
                                  extra_ldflags=["-fopenmp", "-lmvec"], build_directory=str(folder), verbose=False)
    except (RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"the native runtime did not build ({first})",
                        f"see the compiler output in {folder}, or set SYMBIOTIC_RUNTIME=torch") from None


def hlstm_layer(x: Tensor, u_x: Tensor, u_b: Tensor, u_h: Tensor, w: Tensor, w_b: Tensor,
                order: Tensor | None = None) -> Tensor:
    """One exported layer of D directions from zero state, input product and time loop:
    x (T, B, I) -> (T, B, H), the directions summed. u_x (D*4G, I) dense or CSR, u_b (D*4G,),
    u_h (4G, H) or (D, 4G, H) dense or (D*4G, D*H) block-diagonal CSR, w (D*4, H, G) dense or
    (D*4H, D*4G) block-diagonal CSR, w_b (D*4, H) (the layouts of :mod:`symbiotic.runtime.ds2`).

    ``order`` (T, B), with two directions: the frame the backward direction reads at each step,
    a permutation of the frames of each batch column (DS2: each utterance's valid frames
    reversed); its outputs come back in frame order. None: both directions read frame t.
    """
    if u_h.layout != torch.sparse_csr and u_h.dim() == 2:
        u_h = u_h.unsqueeze(0)  # one direction
    order = x.new_empty(0, dtype=torch.int64) if order is None else order
    return load().hlstm_layer(x, order, u_x, u_b, u_h, w, w_b)


def csr_mm(a: Tensor, x: Tensor, bias: Tensor | None = None) -> Tensor:
    """bias[:, None] + a @ x: a (V, K) CSR with int32 indices, x (K, N) -> (V, N) (csr_mm.cpp)."""
    return load().csr_mm(a, x, x.new_empty(0) if bias is None else bias)
