#!/usr/bin/env bash
# On a machine with a CUDA GPU: install sktransfer, run the gpu-marked tests,
# then the throughput benchmark (JSON + Markdown in benchmarks/gpu/).
# Budget: under 8 minutes on one recent GPU. Usage, from the repository root:
#   bash benchmarks/gpu/run.sh            # the full run (needs CUDA)
#   bash benchmarks/gpu/run.sh --smoke    # tiny sizes on the CPU: checks the script
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-benchmarks/gpu}
if [[ "${1:-}" != "--smoke" ]]; then
    "$PYTHON" -m pip install --quiet -e ".[test,accelerate]"
    "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'"
    status=0
    timeout 180 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests \
        --junitxml="$OUT/gpu_tests.xml" > "$OUT/gpu_tests.txt" 2>&1 || status=$?
    tail -n 30 "$OUT/gpu_tests.txt"
    timeout 300 "$PYTHON" benchmarks/gpu/throughput.py --output "$OUT"
    exit "$status"
else
    "$PYTHON" benchmarks/gpu/throughput.py --smoke --output "${OUT_SMOKE:-/tmp/sktransfer-gpu-smoke}"
fi
