"""Writing files atomically and hashing them: one way for the whole package.

Saved folders (``sktransfer.save``), checkpoints and feature-cache files are
all written with :func:`atomic_write`; weights files and image files are
hashed with :func:`hash_file`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

_CHUNK = 1 << 20


def atomic_write(path, write, *, folder=False):
    """Create ``path`` so that readers see all of it or nothing.

    ``write(tmp)`` writes a file (or, with ``folder=True``, fills a folder)
    at the temporary path ``tmp``, a hidden sibling of ``path`` named
    ``.<name>.<unique>.tmp``; it is then renamed over ``path`` (an earlier
    folder is moved aside first and removed after). Whatever fails, no
    temporary file or folder is left behind. Concurrent writers of the same
    path are safe: each writes its own temporary and the last rename wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unique = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    tmp = path.with_name(f".{path.name}.{unique}.tmp")
    old = path.with_name(f".{path.name}.{unique}.old")
    try:
        if folder:
            tmp.mkdir()
        write(tmp)
        if folder and path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        _remove(tmp)
        _remove(old)


def hash_file(h, path):
    """Update the hashlib object ``h`` with the bytes of the file ``path``."""
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h


def _remove(path):
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except OSError:
        pass
