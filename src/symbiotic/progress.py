"""tqdm progress bars that stay quiet where nobody watches them (CI, pipes)."""

import os
import sys

from tqdm import tqdm


def quiet() -> bool:
    """True under CI or when stderr is not a terminal: bars would only add noise to logs."""
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


def bar(iterable=None, **kwargs):
    """A tqdm bar over ``iterable``; disabled when :func:`quiet`."""
    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
