"""Build sktransfer/data/fashion_mnist_sample.npz from the official Fashion-MNIST.

The sample is what ``sktransfer demo`` runs on when the full data set is not
installed and cannot be downloaded: a stratified random subset of the official
files, keeping the official train/test split,

- 400 training images per class, drawn from the 60,000 training images,
- 200 test images per class, drawn from the 10,000 test images,

with a fixed seed, so that running this script again gives the same images,
the same indices and the same file (sha256 printed at the end and recorded in
``sktransfer/data/README.md``; the content digest is also
``sktransfer.datasets._SAMPLE_DIGEST``, which the loader checks).

The archive holds uint8 arrays ``train_images`` (4000, 28, 28),
``train_target`` (4000,), ``train_index`` (4000,) (positions in the official
training files), and the same three for ``test``; indices are sorted, so the
images keep the official order. It is written with fixed zip timestamps, so
its bytes depend only on the data (and on zlib).

    python benchmarks/make_fashion_mnist_sample.py              # needs the Debian files
    python benchmarks/make_fashion_mnist_sample.py --data-home DIR   # or the 4 .gz files in DIR
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from sktransfer.datasets import (
    _sample_digest,
    labels_per_class_split,
    load_fashion_mnist,
)

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "sktransfer" / "data" / "fashion_mnist_sample.npz"
SEED = 20170828  # the date of the Fashion-MNIST paper (arXiv:1708.07747)
PER_CLASS = {"train": 400, "test": 200}


def sample_arrays(data_home=None):
    """The arrays of the sample, drawn from the official files."""
    arrays = {}
    for offset, (subset, n_per_class) in enumerate(PER_CLASS.items()):
        data = load_fashion_mnist(subset=subset, data_home=data_home)
        idx, _ = labels_per_class_split(
            data.target, n_per_class, random_state=SEED + offset
        )
        arrays[f"{subset}_images"] = data.images[idx]
        arrays[f"{subset}_target"] = data.target[idx].astype(np.uint8)
        arrays[f"{subset}_index"] = idx.astype(np.uint16)
        print(f"{subset}: {len(idx)} of {len(data.target)} images from {data.source}")
    return arrays


def write_npz(path, arrays):
    """np.savez_compressed, with fixed timestamps (reproducible bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array))
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue(), compresslevel=9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args(argv)
    arrays = sample_arrays(args.data_home)
    output = Path(args.output)
    write_npz(output, arrays)
    print(f"wrote {output}: {output.stat().st_size} bytes")
    print(f"file sha256:    {hashlib.sha256(output.read_bytes()).hexdigest()}")
    print(f"content sha256: {_sample_digest(arrays)}")


if __name__ == "__main__":
    main()
