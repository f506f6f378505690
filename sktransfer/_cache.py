"""Feature cache: feature vectors keyed by model identity and image content.

A cached vector is found again only when everything that determines it is the
same: the model key (backbone, weights, architecture, preprocessing, layers,
pooling, precision, device type, library versions; built by the extractor in
``fit``) and the image key (a digest of the file bytes or of the pixels, never
a position). Vectors are cached per image, so overlapping folds and grid points
reuse each other's rows.

The key policy lives here too: :func:`model_key` (what besides the image
determines a vector), :func:`image_keys` (the image's content) and
:func:`cached_rows` (look up, compute what is missing, store).

Two stores: in this process's memory (least recently used vectors evicted
beyond a size bound), or a folder on disk holding one small file per vector,
written atomically (temporary file + ``os.replace``) so that processes can share
it; unreadable or corrupted files count as misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

import sktransfer

from ._files import atomic_write
from .backbones._weights import names_exact_values, state_dict_identity

_MEMORY_DEFAULT_BYTES = 1 << 30
_ENTRY_OVERHEAD = 256  # bytes per memory entry beyond the vector (keys, dict)
_MAGIC = b"SKTF1\n"  # file format: magic, 16-byte digest, float32 payload
_DIGEST = 16
_SUFFIX = ".f32"
_STALE_TMP_SECONDS = 3600
_RECIPES = "recipes"  # folder of the recipe entries (not a model key: not hex)


class FeatureCache:
    """Feature vectors shared by extractors that compute the same features.

    Pass one as ``cache=`` to :class:`~sktransfer.PretrainedFeatureExtractor`
    to share it between extractors or to bound its size; ``cache="memory"``
    and ``cache="<folder>"`` create one for you. Clones of an extractor
    (``sklearn.base.clone``, every fold of ``GridSearchCV``) share its cache;
    pickling it keeps only its settings, never the vectors.

    Parameters
    ----------
    location : str, path or None, default=None
        None keeps vectors in this process's memory. A folder keeps them on
        disk (created when first written), shared by processes and sessions.
    max_bytes : int or None, default=None
        Size bound. Beyond it the least recently used vectors (memory) or
        files (disk) are evicted. None: 1 GiB in memory, no bound on disk.
    max_entries : int or None, default=None
        Bound on the number of vectors, evicted in the same order.

    Attributes
    ----------
    hits, misses : int
        Vectors found and not found by this object since it was created.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import FeatureCache, PretrainedFeatureExtractor
    >>> from sktransfer.testing import TinyConvNet
    >>> cache = FeatureCache(max_entries=1000)
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    >>> extractor = PretrainedFeatureExtractor(
    ...     TinyConvNet(), preprocessing={"resize_size": 16, "crop_size": 16},
    ...     cache=cache).fit(images)
    >>> first = extractor.transform(images)  # computes and stores 4 vectors
    >>> again = extractor.transform(images)  # finds all 4
    >>> len(cache), cache.hits
    (4, 4)
    >>> bool((first == again).all())
    True
    """

    def __init__(self, location=None, *, max_bytes=None, max_entries=None):
        _check_bound("max_bytes", max_bytes)
        _check_bound("max_entries", max_entries)
        if location is not None and not isinstance(location, (str, os.PathLike)):
            raise TypeError(
                f"FeatureCache: location must be None (memory) or a folder path "
                f"(str or pathlib.Path), got {type(location).__name__}."
            )
        self.location = None if location is None else Path(location).absolute()
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._token = uuid.uuid4().hex
        self._recipes = {}  # recipe key -> model key, width (_cache_recipes)
        if self.location is None:
            self._entries = OrderedDict()
            self._nbytes = 0
        else:
            self._disk_usage = None  # (files, bytes), scanned when first needed
            self._described = set()
        _INSTANCES[self._token] = self

    # -- the interface used by the extractor -------------------------------
    def get_many(self, model_key, image_keys):
        """``{image_key: vector}`` for the keys that are cached.

        Parameters
        ----------
        model_key : str
            The key of the model and settings the vectors were computed with.
        image_keys : iterable of str
            Content keys of the images.

        Returns
        -------
        found : dict
            ``{image_key: ndarray}`` of the keys found; missing keys are
            absent (and counted in ``misses``).
        """
        if self.location is None:
            found = self._memory_get(model_key, image_keys)
        else:
            found = self._disk_get(model_key, image_keys)
        with self._lock:
            self.hits += len(found)
            self.misses += len(set(image_keys)) - len(found)
        return found

    def put_many(self, model_key, vectors, description=None):
        """Store ``{image_key: vector}`` (float32) for ``model_key``.

        Parameters
        ----------
        model_key : str
            The key of the model and settings the vectors were computed with.
        vectors : dict
            ``{image_key: 1-D array}``, stored as float32.
        description : dict or None, default=None
            What the model key was computed from (JSON-able), written next
            to the vectors on disk, for people.
        """
        vectors = {k: _frozen(v) for k, v in vectors.items()}
        if self.location is None:
            self._memory_put(model_key, vectors)
        else:
            self._disk_put(model_key, vectors, description)

    def _get_recipe(self, recipe_key):
        """What an extractor stored with :meth:`_put_recipe` (see
        ``_cache_recipes``), or None: in memory, else on disk."""
        entry = self._recipes.get(recipe_key)
        if entry is None and self.location is not None:
            try:
                path = self.location / _RECIPES / f"{recipe_key}.json"
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            self._recipes[recipe_key] = entry
        return entry

    def _put_recipe(self, recipe_key, entry, persist=True):
        """Remember ``entry`` (a JSON-able dict) under ``recipe_key``; on disk
        too when ``persist`` (it holds in every process)."""
        self._recipes[recipe_key] = entry
        if persist and self.location is not None:
            text = json.dumps(entry, sort_keys=True).encode()
            atomic_write(
                self.location / _RECIPES / f"{recipe_key}.json",
                lambda p: p.write_bytes(text),
            )

    # -- public helpers ------------------------------------------------------
    def clear(self):
        """Remove every cached vector (on disk: every file of this cache)."""
        if self.location is None:
            with self._lock:
                self._entries.clear()
                self._nbytes = 0
            return
        for path in self._files():
            _remove(path)
        with self._lock:
            self._disk_usage = (0, 0)

    def __len__(self):
        """Number of cached vectors."""
        if self.location is None:
            return len(self._entries)
        return len(self._files())

    def __bool__(self):  # an empty cache is still a cache
        return True

    @property
    def nbytes(self):
        """Bytes used (memory: vectors plus a fixed overhead per entry)."""
        if self.location is None:
            return self._nbytes
        return sum(_size(p) for p in self._files())

    def __repr__(self):
        args = [] if self.location is None else [repr(str(self.location))]
        args += [
            f"{k}={v!r}"
            for k, v in (
                ("max_bytes", self.max_bytes),
                ("max_entries", self.max_entries),
            )
            if v is not None
        ]
        return f"FeatureCache({', '.join(args)})"

    def _register(self, token):
        _INSTANCES.pop(self._token, None)
        self._token = token
        _INSTANCES[token] = self

    # Clones and deep copies share the cache; pickles keep only its settings
    # (and find the live cache again when unpickled in the same process).
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (
            _rebuild,
            (self._token, self.location, self.max_bytes, self.max_entries),
        )

    # skops (which does not use __reduce__) stores the settings: a cache read
    # from a skops file starts empty in memory, or finds its folder again.
    def __getstate__(self):
        location = None if self.location is None else str(self.location)
        return {
            "location": location,
            "max_bytes": self.max_bytes,
            "max_entries": self.max_entries,
        }

    def __setstate__(self, state):
        self.__init__(
            state["location"],
            max_bytes=state["max_bytes"],
            max_entries=state["max_entries"],
        )

    # -- memory ------------------------------------------------------------
    def _memory_get(self, model_key, image_keys):
        found = {}
        with self._lock:
            for key in image_keys:
                vector = self._entries.get((model_key, key))
                if vector is not None:
                    self._entries.move_to_end((model_key, key))
                    found[key] = vector
        return found

    def _memory_put(self, model_key, vectors):
        limit = _MEMORY_DEFAULT_BYTES if self.max_bytes is None else self.max_bytes
        with self._lock:
            for key, vector in vectors.items():
                old = self._entries.pop((model_key, key), None)
                if old is not None:
                    self._nbytes -= old.nbytes + _ENTRY_OVERHEAD
                self._entries[(model_key, key)] = vector
                self._nbytes += vector.nbytes + _ENTRY_OVERHEAD
            while self._entries and (
                self._nbytes > limit
                or (
                    self.max_entries is not None
                    and len(self._entries) > self.max_entries
                )
            ):
                _, vector = self._entries.popitem(last=False)
                self._nbytes -= vector.nbytes + _ENTRY_OVERHEAD

    # -- disk --------------------------------------------------------------
    def _path(self, model_key, image_key):
        return self.location / model_key / image_key[:2] / (image_key + _SUFFIX)

    def _disk_get(self, model_key, image_keys):
        found = {}
        for key in image_keys:
            path = self._path(model_key, key)
            vector = _read_vector(path)
            if vector is not None:
                found[key] = vector
                try:  # recently used files are evicted last
                    os.utime(path)
                except OSError:
                    pass
        return found

    def _disk_put(self, model_key, vectors, description):
        if description is not None and model_key not in self._described:
            text = json.dumps(description, indent=1, sort_keys=True).encode()
            atomic_write(
                self.location / model_key / "key.json", lambda p: p.write_bytes(text)
            )
            self._described.add(model_key)
        written = 0
        for key, vector in vectors.items():
            payload = vector.astype("<f4", copy=False).tobytes()
            data = (
                _MAGIC
                + hashlib.blake2b(payload, digest_size=_DIGEST).digest()
                + payload
            )
            atomic_write(self._path(model_key, key), _writer(data))
            written += len(data)
        if self.max_bytes is None and self.max_entries is None:
            return
        with self._lock:
            if self._disk_usage is None:
                self._disk_usage = self._scan_usage()
            files, nbytes = self._disk_usage
            self._disk_usage = (files + len(vectors), nbytes + written)
            if self._over(*self._disk_usage):
                self._evict()

    def _over(self, files, nbytes):
        return (self.max_bytes is not None and nbytes > self.max_bytes) or (
            self.max_entries is not None and files > self.max_entries
        )

    def _files(self):
        if self.location is None or not self.location.is_dir():
            return []
        return [p for p in self.location.glob(f"*/*/*{_SUFFIX}")]

    def _scan_usage(self):
        files = self._files()
        return len(files), sum(_size(p) for p in files)

    def _evict(self):
        """Remove least recently used files down to 90% of the bounds.

        Other processes may be writing and evicting too: files that vanish
        meanwhile are skipped.
        """
        entries = []
        for path in self._files():
            try:
                st = path.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, path))
        entries.sort()
        files, nbytes = len(entries), sum(e[1] for e in entries)
        target_bytes = None if self.max_bytes is None else 0.9 * self.max_bytes
        target_files = None if self.max_entries is None else int(0.9 * self.max_entries)
        for _, size, path in entries:
            if (target_bytes is None or nbytes <= target_bytes) and (
                target_files is None or files <= target_files
            ):
                break
            _remove(path)
            files, nbytes = files - 1, nbytes - size
        self._disk_usage = (files, nbytes)
        _remove_stale_tmp(self.location)


_INSTANCES = weakref.WeakValueDictionary()  # token -> FeatureCache
_FOLDERS = weakref.WeakValueDictionary()  # absolute folder -> FeatureCache
_DEFAULT_MEMORY = None
_DEFAULT_TOKEN = "memory"


def _rebuild(token, location, max_bytes, max_entries):
    if token == _DEFAULT_TOKEN:
        return resolve_cache("memory", "FeatureCache")
    cache = _INSTANCES.get(token)
    if cache is None:
        cache = FeatureCache(location, max_bytes=max_bytes, max_entries=max_entries)
        cache._register(token)
    return cache


def resolve_cache(cache, owner):
    """The FeatureCache for an estimator's ``cache`` parameter (or None).

    ``"memory"`` is one cache per process; a folder path gives the same
    object to every estimator naming that folder while one of them holds it.
    """
    global _DEFAULT_MEMORY
    if cache is None or isinstance(cache, FeatureCache):
        return cache
    if isinstance(cache, str) and cache == "memory":
        if _DEFAULT_MEMORY is None:
            _DEFAULT_MEMORY = FeatureCache()
            _DEFAULT_MEMORY._register(_DEFAULT_TOKEN)
        return _DEFAULT_MEMORY
    if isinstance(cache, (str, os.PathLike)):
        folder = Path(cache).absolute()
        if folder.exists() and not folder.is_dir():
            raise ValueError(
                f"{owner}: cache={str(cache)!r} is a file; pass a folder for a "
                f"disk cache, 'memory', a FeatureCache or None."
            )
        found = _FOLDERS.get(str(folder))
        if found is None:
            found = FeatureCache(folder)
            _FOLDERS[str(folder)] = found
        return found
    raise TypeError(
        f"{owner}: cache must be None, 'memory', a folder path (str or "
        f"pathlib.Path) or a sktransfer.FeatureCache, got an object of type "
        f"{type(cache).__name__}."
    )


# -- the key policy ----------------------------------------------------------------
KEY_FORMAT = 1


def model_key(
    model,
    *,
    backbone_name,
    weights_id,
    preprocessing,
    layers,
    pooling,
    precision,
    device,
    lazy=False,
    compile=False,
):
    """``(key, description)``: what, besides the image, determines a feature
    vector of the FeatureModel ``model``.

    ``weights_id`` stands for the weights when it names exactly the values
    loaded (content digests, versioned library weights, seeded random ones
    with the torch version in the key); otherwise (weights a custom create()
    function chose, whose code may change under the same name, or lazily
    initialised modules) the digest of the values themselves is used.
    """
    weights = weights_id
    if lazy or not names_exact_values(weights):
        weights = state_dict_identity(model.state_dict())
    body = model.body
    architecture = [repr(body)] + [
        f"{k}:{tuple(v.shape)}:{v.dtype}" for k, v in body.state_dict().items()
    ]
    description = {
        "format": KEY_FORMAT,
        "versions": library_versions(),
        "backbone": backbone_name,
        "weights": weights,
        "architecture": digest(architecture),
        "preprocessing": (
            "passthrough" if preprocessing is None else preprocessing.to_dict()
        ),
        "layers": layers,
        "pooling": pooling,
        "precision": precision,
        "device": device.type,
    }
    if compile:  # compiled kernels may round differently (absent: keys as before)
        description["compile"] = True
    return digest(description), description


def library_versions():
    """The versions of the libraries that determine a feature vector."""
    import torch
    import torchvision

    return {
        "sktransfer": sktransfer.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": _installed_version("timm"),
    }


def image_keys(data, n_threads=1):
    """Content keys of the images of ``data`` (an ImageSequence: None for an
    image that cannot be read) or of the rows of a float32 tensor."""
    if not hasattr(data, "key"):
        return row_keys(data)

    def key(i):
        try:
            return data.key(i)
        except (ValueError, OSError):
            return None

    if n_threads == 1 or len(data) == 1:
        return [key(i) for i in range(len(data))]
    with ThreadPoolExecutor(n_threads) as pool:
        return list(pool.map(key, range(len(data))))


def cached_rows(cache, key, image_keys, compute, *, store=True, description=None):
    """Feature rows of the images ``image_keys`` (None: not cacheable).

    Rows found in ``cache`` under the model key ``key`` are reused; the first
    row of each missing image is computed by ``compute(indices)`` (an array
    of one row per index) and, with ``store``, cached unless it holds NaN
    (an unreadable image).
    """
    found = cache.get_many(key, [k for k in image_keys if k is not None])
    todo = {}  # rows to compute: the first of each missing image
    for i, k in enumerate(image_keys):
        if k is None:
            todo[("row", i)] = i
        elif k not in found and k not in todo:
            todo[k] = i
    if todo:
        fresh = dict(zip(todo, compute(list(todo.values()))))
        if store:
            cache.put_many(
                key,
                {
                    k: v
                    for k, v in fresh.items()
                    if not isinstance(k, tuple) and np.isfinite(v).all()
                },
                description=description,
            )
        found.update(fresh)
    return np.stack(
        [found[("row", i) if k is None else k] for i, k in enumerate(image_keys)]
    ).astype(np.float32, copy=False)


def _installed_version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def digest(value):
    """A short hex digest of a JSON-able value (the model key)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def row_keys(data):
    """Content keys of the rows of a float32 tensor (passthrough input)."""
    keys = []
    for row in data:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"tensor:{tuple(row.shape)}:{row.dtype}:".encode())
        h.update(row.contiguous().numpy().tobytes())
        keys.append(h.hexdigest())
    return keys


def _check_bound(name, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"FeatureCache: {name} must be a positive int or None, got {value!r}."
        )


def _frozen(vector):
    vector = np.array(vector, dtype=np.float32, copy=True)
    vector.flags.writeable = False
    return vector


def _read_vector(path):
    """The vector in ``path``, or None when missing, partial or corrupted."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    head = len(_MAGIC) + _DIGEST
    if len(data) < head or not data.startswith(_MAGIC) or (len(data) - head) % 4:
        return None
    payload = data[head:]
    if (
        hashlib.blake2b(payload, digest_size=_DIGEST).digest()
        != data[len(_MAGIC) : head]
    ):
        return None
    vector = np.frombuffer(payload, dtype="<f4").astype(np.float32)
    vector.flags.writeable = False
    return vector


def _writer(data):
    return lambda path: path.write_bytes(data)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _size(path):
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _remove_stale_tmp(root):
    """Temporary files left by a process that died while writing."""
    now = time.time()
    for path in root.glob("*/*/.*.tmp"):
        try:
            if now - path.stat().st_mtime > _STALE_TMP_SECONDS:
                path.unlink()
        except OSError:
            pass
