"""The compiled time loop (``hlstm.cpp``), built with ``torch.utils.cpp_extension`` on first use.

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

__all__ = ["wanted", "runs", "build_dir", "load", "hlstm_loop", "hlstm_rows"]

SOURCE = Path(__file__).with_name("hlstm.cpp")
RUNTIMES = ("native", "torch")


def wanted() -> bool:
    """True unless the user chose the torch path (``SYMBIOTIC_RUNTIME=torch``)."""
    choice = os.environ.get("SYMBIOTIC_RUNTIME", "native")
    if choice not in RUNTIMES:
        raise UserError(f"SYMBIOTIC_RUNTIME is '{choice}'", f"set it to one of: {', '.join(RUNTIMES)}")
    return choice == "native"


def runs(x: Tensor) -> bool:
    """Whether the native loop runs on activations ``x``: wanted, and float32 on the CPU (the
    kernel's one case; CUDA and other dtypes take the torch path, which is their fast one)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and wanted()


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
        return cpp_extension.load("symbiotic_native", [str(SOURCE)], extra_cflags=flags,
                                  extra_ldflags=["-fopenmp", "-lmvec"], build_directory=str(folder), verbose=False)
    except (RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"the native runtime did not build ({first})",
                        f"see the compiler output in {folder}, or set SYMBIOTIC_RUNTIME=torch") from None


def hlstm_loop(pre: Tensor, u_h: Tensor, w: Tensor, w_b: Tensor) -> Tensor:
    """The time loop of one layer of D directions, from zero state: pre (T, D*4G, B)
    (U_x x_t + u_b; a backward direction's rows already in reversed time), u_h (4G, H) or
    (D, 4G, H) dense or (D*4G, D*H) block-diagonal CSR, w (D*4, H, G) dense or (D*4H, D*4G)
    block-diagonal CSR, w_b (D*4, H) -> (T, D, H, B)."""
    T, R, B = pre.shape
    if T == 0:
        return pre.new_zeros(0, w_b.shape[0] // 4, w_b.shape[1], B)
    flat = pre.permute(1, 0, 2).reshape(R, T * B)  # column t*B + b, as the kernel reads (any strides)
    return hlstm_rows(flat, T, u_h, w, w_b)


def hlstm_rows(pre: Tensor, T: int, u_h: Tensor, w: Tensor, w_b: Tensor) -> Tensor:
    """:func:`hlstm_loop` with pre already as the kernel reads it: (D*4G, T*B), column t*B + b
    (row and column strides free), so that no copy is made of the exports' input product; T >= 1."""
    if u_h.layout != torch.sparse_csr and u_h.dim() == 2:
        u_h = u_h.unsqueeze(0)  # one direction
    return load().hlstm_loop(pre, T, u_h, w, w_b)
