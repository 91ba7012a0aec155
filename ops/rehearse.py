"""`make rehearse`: the training pipeline itself on this machine, with no AWS account, before a multi-hour GPU job.

The state machine that the training stack deploys (stacks/constructs/training_definition.py, built from settings)
executes in moto's ASL interpreter with the `jsonata` engine (fakes/stepfunctions.py says what is real and what is
stood in). Its PrepareDataset step invokes the real prep handler, which downloads a synthetic archive over loopback
HTTP into S3 (moto); its TrainModel step creates the training job, and that job runs training/train.py from the
shipped source archive on a tiny random-init GPT-J, on CPU, with the SageMaker environment derived from the
CreateTrainingJob request the state machine made (channels, hyperparameters, output path): a hyperparameter the
script does not accept fails the rehearsal. Then the model folder the execution's output names is downloaded from
S3, loaded, and asked the notebook's question through the same request translation that `make invoke` uses.

It catches wiring bugs (state machine to prep to channels to script arguments to model layout to request schema),
not model quality: the archive is synthetic and the model tiny.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
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
STEPS = 4
BUCKET = "legal-gptj-rehearsal"
# Deployed settings the rehearsal changes so that a tiny model on a CPU trains in seconds; everything else is the
# default configuration (instance type, spot off, tuning off). The execution input sets doc_count, epochs, method.
REHEARSAL_SETTINGS: dict[str, Any] = {"block_size": 64, "learning_rate": 3e-3, "per_device_train_batch_size": 8}


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.step = 0

    def __call__(self, message: str) -> None:
        self.step += 1
        print(f"[{self.step}/{STEPS}] {time.monotonic() - self.started:5.1f}s  {message}", file=sys.stderr, flush=True)


@dataclass
class Rehearsal:
    """What a rehearsal ran, for the summary and the tests."""

    execution: Any
    request: dict[str, Any]
    run: dict[str, Any]
    model_dir: Path
    answer: str
    metrics: dict[str, list[float]]


def hub_cache(folder: Path, model: Path) -> Path:
    """A Hugging Face Hub cache holding `model` as the pinned revision of the base model's id, which is where
    train.py looks for it offline: the job downloads the base model from the Hub by id (decisions.md T7)."""
    sys.path.insert(0, str(ROOT / "training"))
    from arguments import MODEL_ID, MODEL_REVISION

    repo = folder / ("models--" + MODEL_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / MODEL_REVISION
    snapshot.mkdir(parents=True)
    for path in model.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(MODEL_REVISION)
    return folder


def deploy(sf: Any, archive: Any, source_url: str, settings: Any) -> str:
    """What the dataset and training stacks would have created, in moto: the bucket, the prep function with the
    dataset stack's environment, the job role, the failure topic, the shipped source archive, the state machine
    (its ARN is returned)."""
    from fakes.stepfunctions import create_prep_function, pipeline_spec
    from stacks.constructs import training_definition as td
    from stacks.constructs.training_source import TRAINING_SOURCE, archive_bytes

    sf.client("s3").create_bucket(Bucket=BUCKET)
    role = sf.client("iam").create_role(RoleName="job-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    # The dataset stack's environment, with the loopback archive as the source.
    environment = {"DATASET_BUCKET": BUCKET, "DOC_COUNT": str(settings.doc_count), "VALIDATION": settings.validation,
                   "SOURCE_URL": source_url, "EXPECTED_MD5": archive.md5}  # fmt: skip
    prep = create_prep_function(sf, "prep", role, environment)
    topic = sf.client("sns").create_topic(Name="training-failures")["TopicArn"]
    sf.client("s3").put_object(Bucket=BUCKET, Key="assets/training-source.tar.gz", Body=archive_bytes(TRAINING_SOURCE))
    spec = pipeline_spec(
        settings,
        bucket=BUCKET,
        job_role_arn=role,
        prep_function_arn=prep,
        topic_arn=topic,
        source_s3_uri=f"s3://{BUCKET}/assets/training-source.tar.gz",
    )
    arn: str = sf.create_state_machine(td.definition(spec), name="rehearsal")
    return arn


def download_model(s3: Any, uri: str, folder: Path) -> Path:
    """The model folder the execution's output names, as the serving stack's container would fetch it."""
    from fakes.stepfunctions import download_prefix

    if not download_prefix(s3, uri, folder):
        raise SystemExit(f"error: the execution's model_s3_uri {uri} holds no files")
    return folder


def metric_values(request: dict[str, Any], log: str) -> dict[str, list[float]]:
    """The metric definitions of the job's request (what SageMaker would chart) applied to the job's log."""
    definitions = request["AlgorithmSpecification"]["MetricDefinitions"]
    return {d["Name"]: [float(v) for v in re.findall(d["Regex"], log)] for d in definitions}


def query(model_dir: Path, progress: Progress) -> str:
    """The notebook's request, translated as for the endpoint, answered by the saved model in-process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    generation = Generation.from_notebook(NOTEBOOK_REQUEST)
    prompt = tokenizer(generation.text_inputs, return_tensors="pt")
    body = lmi_request(generation, prompt_tokens=int(prompt["input_ids"].shape[1]))
    progress(f"query the model from S3 with the LMI request {json.dumps(body)}")
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


def rehearse(workdir: Path, doc_count: int, method: str, progress: Progress) -> Rehearsal:
    from config import Settings
    from fakes.archive import build_synthetic_archive
    from fakes.http_server import BlobServer
    from fakes.stepfunctions import TrainingContainer, step_functions
    from fakes.tiny_gptj import make_tiny_model

    progress(f"synthetic dataset.zip with the real layout ({doc_count} + 3 UK-Abs judgments) in {workdir}")
    archive = build_synthetic_archive(workdir / "dataset.zip", uk_train_docs=doc_count, uk_test_docs=3)
    # The tiny model's tokenizer learns the judgments' text (the real one is GPT-2's, trained on far more).
    texts = workdir / "tokenizer-text"
    texts.mkdir()
    for name in archive.uk_train_names:
        (texts / name).write_bytes(archive.read(f"UK-Abs/train-data/judgement/{name}"))
    cache = hub_cache(workdir / "hub", make_tiny_model(workdir / "tiny-gptj", sorted(texts.glob("*.txt"))))
    settings = Settings(region="us-east-1", doc_count=doc_count, **REHEARSAL_SETTINGS)
    container = TrainingContainer(
        workdir / "jobs",
        extra_env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
    )  # fmt: skip
    with BlobServer(archive.data) as http, step_functions() as sf:
        state_machine = deploy(sf, archive, http.url, settings)
        sf.sagemaker.runner = container
        execution_input = {"doc_count": doc_count, "epochs": 1, "method": method}
        progress(
            f"execute the training state machine ({sf.engine.versions['jsonata']} on node {sf.engine.versions['node']})"
            f" with {json.dumps(execution_input)}: prep over {http.url}, then the training job on CPU"
        )
        execution = sf.run(
            state_machine, execution_input, name=time.strftime("%y%m%d-%H%M%S-rhrs", time.gmtime()), timeout=600
        )
        requests = [r for op, r in sf.sagemaker.calls if op == "CreateTrainingJob"]
        if execution.status != "SUCCEEDED":
            log = container.runs[-1]["log"][-3000:] if container.runs else ""
            raise SystemExit(f"error: the pipeline failed: {execution.error}: {execution.cause}\n{log}")
        (request,) = requests
        (run,) = container.runs
        progress(f"{execution.states} -> {execution.output['model_s3_uri']}")
        model_dir = download_model(sf.client("s3"), execution.output["model_s3_uri"], workdir / "model-from-s3")
    answer = query(model_dir, progress)
    return Rehearsal(execution, request, run, model_dir, answer, metric_values(request, run["log"]))


def main(argv: list[str] | None = None) -> int:
    from config.settings import METHODS, UK_ABS_TRAIN_DOCUMENTS

    parser = argparse.ArgumentParser(prog="make rehearse", description=__doc__)
    parser.add_argument("--doc-count", type=int, default=8, help="training judgments in the synthetic archive")
    parser.add_argument("--method", choices=METHODS, default="full", help="the execution's method")
    parser.add_argument("--keep", type=Path, help="keep the work folder here instead of a temporary one")
    args = parser.parse_args(argv)
    if not 1 <= args.doc_count <= UK_ABS_TRAIN_DOCUMENTS:
        parser.error(f"--doc-count: expected an integer from 1 to {UK_ABS_TRAIN_DOCUMENTS}, got {args.doc_count}")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for noisy in ("moto", "werkzeug", "dataset_prep"):  # the interpreter logs every caught error with its state
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    sys.path.insert(0, str(ROOT))
    progress = Progress()
    with tempfile.TemporaryDirectory(prefix="rehearse-") as temporary:
        workdir = args.keep or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        result = rehearse(workdir, args.doc_count, args.method, progress)
    perplexity = result.metrics.get("eval:perplexity", [])
    print(f"states:     {' -> '.join(result.execution.states)}")
    print(f"job:        {result.request['TrainingJobName']} ran train.py {' '.join(result.run['argv'])}")
    print(f"manifest:   {result.execution.output['manifest_uri']}")
    print(f"model:      {result.execution.output['model_s3_uri']}")
    print(f"train loss: {' -> '.join(f'{v:.3f}' for v in result.metrics.get('train:loss', []))}")
    if len(perplexity) >= 2:
        print(f"validation perplexity: base {perplexity[0]:.1f} -> fine-tuned {perplexity[-1]:.1f}")
    print(f"answer:     {result.answer!r}")
    print(f"rehearsal passed in {time.monotonic() - progress.started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
