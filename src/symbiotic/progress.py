"""tqdm progress bars that stay quiet where nobody watches them (CI, pipes)."""

import os
import sys

from tqdm import tqdm


def quiet() -> bool:
    """True under CI or when stderr is not a terminal: bars would only add noise to logs. Of
    several training processes only rank 0 shows bars, on the terminal its launcher writes to
    (training.distributed.launch passes the ranks' stderr through a pipe)."""
    if os.environ.get("CI") or os.environ.get("RANK", "0") != "0":
        return True
    return not (sys.stderr.isatty() or os.environ.get("SYMBIOTIC_TTY") == "1")


def bar(iterable=None, **kwargs):
    """A tqdm bar over ``iterable``; disabled when :func:`quiet`."""
    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
