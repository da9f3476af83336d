"""A real headless browser (Debian's chromium) for the report tests: the page as rendered (DOM
after its script ran) and a screenshot. ``CHROMIUM`` is None where none is installed
(scripts/setup installs it)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless, no sandbox (CI runs as root), no GPU, and nothing that reaches the network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)


def rendered_dom(page: Path, profile: Path) -> str:
    proc = _chromium(page, profile, "--dump-dom")
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]
    return proc.stdout


def screenshot(page: Path, profile: Path, out: Path) -> Path:
    proc = _chromium(page, profile, "--window-size=1300,6000", f"--screenshot={out}")
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    return out


class Cells(HTMLParser):
    """The body's data-* marks, every <img> and every cell that names its source file."""

    def __init__(self):
        super().__init__()
        self.body, self.images, self.cells, self._open = {}, [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "td" and "data-source" in attrs:
            self._open = [attrs["data-source"], attrs["data-key"], ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[2] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._open is not None:
            self.cells.append(tuple(self._open))
            self._open = None


def cells(dom: str) -> Cells:
    parser = Cells()
    parser.feed(dom)
    return parser
