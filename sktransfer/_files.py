"""Writing files atomically and hashing them: one way for the whole package.

Saved folders (``sktransfer.save``), checkpoints and feature-cache files are
all written with :func:`atomic_write`; weights files and image files are
hashed with :func:`hash_file`, image files through :func:`file_digest`, which
remembers the digest of a file that has not changed since it was read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

_CHUNK = 1 << 20
# file_digest's memory: (prefix, file identity and state) -> hex digest. An
# entry is ~200 bytes, so the bound keeps it under ~50 MB.
_DIGESTS: OrderedDict = OrderedDict()
_DIGESTS_MAX = 1 << 18
_DIGESTS_LOCK = threading.Lock()


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


def file_digest(path, prefix=b""):
    """The 16-byte BLAKE2b hex digest of ``prefix`` + the bytes of ``path``.

    A digest is remembered (per process) under the file's identity and state
    as ``os.stat`` reports them: device, inode, size, modification and
    status-change times in nanoseconds. Writing to a file changes its
    status-change time, which no user call can set back, so a changed file
    is read again; an unchanged one is not. The digest is remembered only
    when the file's state is the same before and after reading it.
    """
    before = _state(path)
    memo_key = (prefix, before)
    with _DIGESTS_LOCK:
        digest = _DIGESTS.get(memo_key)
        if digest is not None:
            _DIGESTS.move_to_end(memo_key)
            return digest
    h = hashlib.blake2b(prefix, digest_size=16)
    digest = hash_file(h, path).hexdigest()
    if _state(path) == before:
        with _DIGESTS_LOCK:
            _DIGESTS[memo_key] = digest
            if len(_DIGESTS) > _DIGESTS_MAX:
                _DIGESTS.popitem(last=False)
    return digest


def _state(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remove(path):
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except OSError:
        pass
