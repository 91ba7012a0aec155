"""The folder train.py saves loads where it is served: the transformers release of the serving container's vLLM
(pinned in tests/serving/requirements.txt, which names the LMI release it follows) reads its config, tokenizer and
weights, in its own environment, and generates.

Real: that transformers release's AutoConfig, AutoTokenizer and from_pretrained on the folder of the default job's
numerics (fp16 weights, 2 FSDP2 ranks), run by tests/training/serving_load.py under the serving environment's Python
(SERVING_PYTHON; `make test-container` builds .venv-serving and sets it). Not real: vLLM's own GPT-J implementation
and CUDA kernels, and the container's own torch (the CUDA build its vLLM needs); the CPU torch that
tests/serving/requirements.txt pins computes here.
"""

import json
import os
import subprocess

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.training.conftest import HERE, ROOT, Launched, pins

SERVING_PYTHON = os.environ.get("SERVING_PYTHON")
PROMPT = "His Honour Judge Richards:"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SERVING_PYTHON,
        reason="needs the serving container's transformers in its own environment: set SERVING_PYTHON to its python "
        "(make test-container builds .venv-serving from tests/serving/requirements.txt and sets it)",
    ),
]


def test_the_saved_folder_loads_and_generates_with_the_serving_containers_transformers(
    launches: dict[str, Launched],
) -> None:
    run = launches["v100"].result()
    assert run.returncode == 0, run.output
    assert SERVING_PYTHON
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "HF_HUB_OFFLINE": "1"}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    loaded = subprocess.run(
        [SERVING_PYTHON, str(HERE / "serving_load.py"), str(run.model_dir), PROMPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    served = json.loads(loaded.stdout.splitlines()[-1])

    assert served["transformers"] == pins(ROOT / "tests/serving/requirements.txt")["transformers"]
    assert served["architectures"] == ["GPTJForCausalLM"]
    # What the saved GPT2Tokenizer loads as: GPT2TokenizerFast in transformers 4.x, GPT2Tokenizer in 5.x.
    assert served["tokenizer_class"] in ("GPT2TokenizerFast", "GPT2Tokenizer")
    assert served["loading_info"] == {
        "missing_keys": [],
        "unexpected_keys": [],
        "mismatched_keys": [],
        "error_msgs": [],
    }
    assert served["served_dtype"] == "torch.float16"

    # The same tokens and, from the same weights, the same logits as the training side's transformers gives.
    tokenizer = AutoTokenizer.from_pretrained(run.model_dir)
    inputs = tokenizer(PROMPT, return_tensors="pt")
    assert served["input_ids"] == inputs["input_ids"][0].tolist()
    assert served["eos_token_id"] == tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(run.model_dir, dtype=torch.float32)
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    torch.testing.assert_close(torch.tensor(served["logits"]), logits, atol=1e-4, rtol=1e-4)
    assert served["new_tokens"] == 8 and served["generated"].startswith(PROMPT)
