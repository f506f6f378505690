"""Sphinx configuration of the sktransfer documentation.

Build with ``make docs`` (HTML in docs/_build/html). The gallery under
examples/ runs at build time, offline, on CPU.
"""

import os
import sys
from pathlib import Path

from sphinx.util import logging

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the checkout, not an installed copy

import sktransfer  # noqa: E402

# The gallery runs on CPU, with few threads, whatever the machine has.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

project = "sktransfer"
author = "sktransfer developers"
copyright = "sktransfer developers"
release = version = sktransfer.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "auto_examples/*.ipynb", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
html_theme = "alabaster"
html_static_path = []

# -- API reference ------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Every documented object: each parameter described, no unknown parameter,
# a Returns section with a description, a docstring at all.
numpydoc_validation_checks = {"PR01", "PR02", "PR07", "RT01", "RT03", "GL08"}
# The public names themselves (``__all__`` of sktransfer, .datasets, .distributed, .testing)
# must also have an Examples section (numpydoc's EX01), checked below.
PUBLIC = {f"sktransfer.{n}" for n in sktransfer.__all__ if n != "__version__"}
for _module in ("datasets", "distributed", "testing"):
    PUBLIC |= {
        f"sktransfer.{_module}.{n}"
        for n in getattr(__import__(f"sktransfer.{_module}"), _module).__all__
    }


def _require_examples(app, what, name, obj, options, lines):
    if name in PUBLIC and not any(line.strip() == "Examples" for line in lines):
        logging.getLogger(__name__).warning(
            "%s: EX01 no Examples section (every public name needs one)", name
        )


def setup(app):
    app.connect("autodoc-process-docstring", _require_examples, priority=400)


# -- Markdown pages (user guide, changelog, install) -----------------------------
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]  # the guide links repository files

intersphinx_mapping = {}  # offline: no inventories are fetched

# -- gallery --------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # the Dask / Ray scripts start clusters: documented in the user guide, run
    # by tests/test_cluster.py, not part of the gallery
    "ignore_pattern": r"(__init__|cluster_\w+)\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("matplotlib",),
    "abort_on_example_error": True,
}
