"""Collection settings for the doctests of optional parts of the package."""

import importlib.util

# Doctests of modules whose examples need an optional extra that the oldest
# versions job (make test-oldest, .[test-core]) does not install.
collect_ignore = []
if importlib.util.find_spec("pyarrow") is None:  # sktransfer[parquet]
    collect_ignore += ["sktransfer/_batch_extract.py", "sktransfer/distributed.py"]
