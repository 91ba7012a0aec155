"""`make rehearse`: the whole chain on this machine, with no AWS account, before a multi-hour GPU job.

archive -> prep CLI (over loopback HTTP) -> S3 (moto's server on loopback) -> manifest -> channels, as SageMaker
would download them -> training/train.py on CPU with a tiny random-init GPT-J -> the saved model loaded and asked
the notebook's question through the same request translation that `make invoke` uses.

It catches wiring bugs (paths, channel layout, manifest fields, argument names, the saved model's format, the
request schema), not model quality: the archive is synthetic and the model tiny.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ops.lmi_request import Generation, generated_texts, lmi_request

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_REQUEST = {
    "text_inputs": "His Honour Judge Richards:",
    "max_length": 60,
    "num_return_sequences": 1,
    "top_k": 250,
    "top_p": 0.8,
    "do_sample": True,
    "temperature": 1,
}
STEPS = 5


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.step = 0

    def __call__(self, message: str) -> None:
        self.step += 1
        print(f"[{self.step}/{STEPS}] {time.monotonic() - self.started:5.1f}s  {message}", file=sys.stderr, flush=True)


def run_prep(archive: Path, doc_count: int, s3: Any, progress: Progress) -> str:
    """The prep's own command line, downloading over loopback HTTP into the loopback S3 `s3`; returns the manifest
    URI."""
    from fakes.http_server import BlobServer

    data = archive.read_bytes()
    with BlobServer(data) as http:
        bucket = s3.new_bucket()
        progress(f"prep: {len(data) / 1e6:.1f} MB archive over {http.url} into s3://{bucket} ({s3.endpoint_url})")
        result = subprocess.run(
            [
                sys.executable, "-m", "lambdas.dataset_prep", "--source-url", http.url, "--bucket", bucket,
                "--s3-endpoint-url", s3.endpoint_url, "--doc-count", str(doc_count), "--quiet",
                "--expected-md5", hashlib.md5(data, usedforsecurity=False).hexdigest(),
            ],
            cwd=ROOT, env={**os.environ, **s3.env()}, capture_output=True, text=True, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"error: the prep failed: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1]


def download_channels(s3: Any, manifest_uri: str, channels: Path, progress: Progress) -> dict[str, Path]:
    """Only what the manifest names, checked against its sizes and sha256, as SageMaker's File mode lays it out."""
    client = s3.client()
    bucket, _, key = manifest_uri.removeprefix("s3://").partition("/")
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    progress(f"manifest {manifest_uri}: dataset {manifest['dataset_id']}")
    folders = {}
    for channel, output in manifest["outputs"].items():
        body = client.get_object(Bucket=bucket, Key=output["key"])["Body"].read()
        if len(body) != output["size_bytes"] or hashlib.sha256(body).hexdigest() != output["sha256"]:
            raise SystemExit(f"error: s3://{bucket}/{output['key']} does not match its manifest entry")
        folder = channels / channel
        folder.mkdir(parents=True)
        (folder / Path(output["key"]).name).write_bytes(body)
        folders[channel] = folder
    return folders


def train(workdir: Path, folders: dict[str, Path], progress: Progress) -> tuple[Path, str]:
    from fakes.tiny_gptj import make_tiny_model

    model = make_tiny_model(workdir / "base-model", sorted(folders["train"].glob("*.txt")))
    progress("training/train.py on CPU: tiny random-init GPT-J, 12 steps, checkpoints, eval before and after")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SM_")},
        "SM_CHANNEL_TRAIN": str(folders["train"]),
        "SM_CHANNEL_VALIDATION": str(folders["validation"]),
        "SM_MODEL_DIR": str(workdir / "model"),
        "SM_OUTPUT_DATA_DIR": str(workdir / "output"),
        "SM_NUM_GPUS": "0",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(
        [
            sys.executable, str(ROOT / "training" / "train.py"), "--model_name_or_path", str(model),
            "--checkpoint_dir", str(workdir / "checkpoints"), "--block_size", "32", "--max_steps", "12",
            "--learning_rate", "3e-3", "--checkpoint_every_steps", "6", "--eval_every_steps", "12",
            "--logging_steps", "4",
        ],
        cwd=workdir, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"error: training failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return workdir / "model", result.stdout


def metric_values(log: str) -> dict[str, list[float]]:
    """The job's own metric definitions (what SageMaker would chart) applied to the real log."""
    import re

    sys.path.insert(0, str(ROOT / "training"))
    from metrics import METRIC_DEFINITIONS

    return {d["Name"]: [float(v) for v in re.findall(d["Regex"], log)] for d in METRIC_DEFINITIONS}


def query(model_dir: Path, progress: Progress) -> str:
    """The notebook's request, translated as for the endpoint, answered by the saved model in-process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    generation = Generation.from_notebook(NOTEBOOK_REQUEST)
    prompt = tokenizer(generation.text_inputs, return_tensors="pt")
    body = lmi_request(generation, prompt_tokens=int(prompt["input_ids"].shape[1]))
    progress(f"query the saved model with the LMI request {json.dumps(body)}")
    parameters = body["parameters"]
    torch.manual_seed(0)
    output = model.generate(
        **prompt,
        max_new_tokens=parameters["max_new_tokens"],
        do_sample=parameters["do_sample"],
        top_k=parameters.get("top_k"),
        top_p=parameters.get("top_p"),
        temperature=parameters.get("temperature"),
        pad_token_id=tokenizer.eos_token_id,
    )
    new = tokenizer.decode(output[0][prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    text = body["inputs"] + new if parameters["return_full_text"] else new
    return generated_texts(json.dumps({"generated_text": text}))[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make rehearse", description=__doc__)
    parser.add_argument("--doc-count", type=int, default=8, help="training judgments in the synthetic archive")
    parser.add_argument("--keep", type=Path, help="keep the work folder here instead of a temporary one")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    sys.path.insert(0, str(ROOT))
    from fakes.archive import build_synthetic_archive
    from fakes.moto_server import MotoServer

    progress = Progress()
    with tempfile.TemporaryDirectory(prefix="rehearse-") as temporary:
        workdir = args.keep or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        progress(f"synthetic dataset.zip with the real layout ({args.doc_count} + 3 UK-Abs judgments) in {workdir}")
        archive = build_synthetic_archive(workdir / "dataset.zip", uk_train_docs=args.doc_count, uk_test_docs=3)
        with MotoServer() as s3:
            manifest_uri = run_prep(archive.path, args.doc_count, s3, progress)
            folders = download_channels(s3, manifest_uri, workdir / "channels", progress)
        model_dir, log = train(workdir, folders, progress)
        metrics = metric_values(log)
        answer = query(model_dir, progress)
    perplexity = metrics.get("eval:perplexity", [])
    print(f"manifest:   {manifest_uri}")
    print(f"train loss: {' -> '.join(f'{v:.3f}' for v in metrics.get('train:loss', []))}")
    if len(perplexity) >= 2:
        print(f"validation perplexity: base {perplexity[0]:.1f} -> fine-tuned {perplexity[-1]:.1f}")
    print(f"answer:     {answer!r}")
    print(f"rehearsal passed in {time.monotonic() - progress.started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
