"""Naming the installed MagickWand library for Wand, found without running a compiler.

Wand looks for ImageMagick's library with ``ctypes.util.find_library`` under two dozen candidate
names; on Linux each miss runs ldconfig, gcc and ld, about half a second in all before the image
worker's first step on Debian (whose library is ``libMagickWand-6.Q16``). Naming the installed
suffix in ``WAND_MAGICK_LIBRARY_SUFFIX`` makes Wand's first lookup succeed.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import sysconfig
from collections.abc import MutableMapping

_LIBRARY = re.compile(r"^libMagickWand(-\d[^/]*?)\.so(\.\d+)*$")


def library_dirs() -> list[str]:
    """Where Linux distributions install shared libraries."""
    multiarch = sysconfig.get_config_var("MULTIARCH")
    return ([f"/usr/lib/{multiarch}"] if multiarch else []) + ["/usr/local/lib", "/usr/lib64", "/usr/lib"]


def installed_suffixes(dirs: list[str]) -> list[str]:
    """The suffixes of the MagickWand libraries in ``dirs`` (``-6.Q16``), ImageMagick 7 first as in
    Wand's own search order."""
    paths = (path for d in dirs for path in glob.glob(os.path.join(d, "libMagickWand*.so*")))
    names = (os.path.basename(path) for path in paths)
    return sorted({m.group(1) for name in names if (m := _LIBRARY.match(name))}, reverse=True)


def name_installed_library(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set ``WAND_MAGICK_LIBRARY_SUFFIX`` (before Wand is imported) unless the user chose the library."""
    if sys.platform != "linux" or "WAND_MAGICK_LIBRARY_SUFFIX" in environ or "MAGICK_HOME" in environ:
        return
    suffixes = installed_suffixes(library_dirs())
    if suffixes:
        environ["WAND_MAGICK_LIBRARY_SUFFIX"] = ";".join(suffixes)
