#!/usr/bin/env bash
# One run of training/bench.py on a GPU machine that cannot download: installs the wheels that
# `make bench-wheels` put in .whl/ (transformers and peft as pinned in training/requirements.txt; the machine's own
# torch, accelerate, tokenizers and safetensors are used), prints the versions, then runs the benchmark under a time
# limit. Arguments go to bench.py. Results: $OUT (default bench-out)/bench.md, bench.json and log.
#   bench/gpu_bench.sh                                  # all 12 configurations, bf16 and fp16 (the default job)
#   bench/gpu_bench.sh --tiny --steps 1 --no_compile    # smoke test, CPU is fine
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench-out}"
mkdir -p "$out"
python="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/bench-site .whl/*.whl
  export PYTHONPATH="/tmp/bench-site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$python" - <<'PY'
import importlib.metadata as metadata
import re
from pathlib import Path

pins = dict(re.findall(r"^([\w-]+)==(\S+)", Path("training/requirements.txt").read_text(), re.MULTILINE))
def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


found = {name: version(name) for name in ("transformers", "peft")}
print(", ".join(f"{name} {version}" for name, version in found.items()))
wrong = [f"{name} {found[name]} (pinned {pins[name]})" for name in found if found[name] != pins[name]]
if wrong:
    raise SystemExit(f"error: {', '.join(wrong)}: run `make bench-wheels` and carry .whl/")
PY
PYTHONUNBUFFERED=1 timeout "${BENCH_TIMEOUT:-540}" "$python" training/bench.py --out "$out" "$@" 2>&1 | tee "$out/log"
