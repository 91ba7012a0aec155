"""End to end through the real script (subprocesses with a SageMaker-like environment), on the CPU."""

import json
import re
import signal
from pathlib import Path

import checkpointing
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.training.conftest import Launched, Run

pytestmark = pytest.mark.slow


def train_losses(output: str) -> list[tuple[int, float]]:
    return [(int(step), float(loss)) for loss, step in re.findall(r"\{'loss': ([0-9.]+),.*'step': (\d+)\}", output)]


def test_full_run_learns_and_reports_base_and_final_perplexity(full_run: Run) -> None:
    losses = [loss for _, loss in train_losses(full_run.output)]
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3
    metrics = full_run.metrics
    assert metrics["base"]["step"] == 0 and metrics["final"]["step"] == 24
    assert metrics["final"]["eval_perplexity"] < 0.7 * metrics["base"]["eval_perplexity"]
    assert [r["step"] for r in metrics["history"] if "eval_loss" in r] == [0, 12, 24]
    assert "eval perplexity: base" in full_run.output
    assert "step 24/24 (100.0%)" in full_run.output


def test_saved_model_is_a_hugging_face_folder_that_generates(full_run: Run) -> None:
    files = {path.name for path in full_run.model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= files
    config = json.loads((full_run.model_dir / "config.json").read_text())
    assert config["architectures"] == ["GPTJForCausalLM"] and config["dtype"] == "float32"  # fp32 on the CPU
    assert config["use_cache"] is True  # training turns the cache off; serving needs it
    # What EleutherAI/gpt-j-6b's folder says, so serving loads the tokenizer the real model has (test_serving_load.py).
    assert json.loads((full_run.model_dir / "tokenizer_config.json").read_text())["tokenizer_class"] == "GPT2Tokenizer"
    generation = json.loads((full_run.model_dir / "generation_config.json").read_text())
    tokenizer_eos = AutoTokenizer.from_pretrained(full_run.model_dir).eos_token_id
    assert generation["pad_token_id"] == tokenizer_eos  # batched generation pads with EOS
    assert {path.stat().st_mode & 0o777 for path in full_run.model_dir.iterdir()} == {0o644}  # readable by serving
    model = AutoModelForCausalLM.from_pretrained(full_run.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(full_run.model_dir)
    prompt = tokenizer("His Honour Judge Richards:", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert generated.shape == (1, prompt["input_ids"].shape[1] + 8)
    decoded = tokenizer.decode(generated[0])
    assert isinstance(decoded, str) and decoded.startswith("His Honour Judge Richards:")


def test_the_default_jobs_numerics_train_end_to_end(launches: dict[str, Launched]) -> None:
    """What ml.p3dn.24xlarge's V100s get, through train.py as 2 ranks on the CPU: fp16 with loss scaling, the fused
    AdamW of a CUDA run, FSDP2; the weights are saved in fp16."""
    run = launches["v100"].result()
    assert run.returncode == 0, run.output
    assert "full fine-tuning on 2 x cpu, torch.float16, sdpa" in run.output
    numerics = "numerics: fp16 compute, FSDP2 (gradients summed, then divided by the world size), loss scaling, fused"
    assert numerics + " AdamW" in run.output
    losses = [loss for _, loss in train_losses(run.output)]
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3
    assert run.metrics["final"]["eval_perplexity"] < 0.7 * run.metrics["base"]["eval_perplexity"]
    assert json.loads((run.model_dir / "config.json").read_text())["dtype"] == "float16"
    assert {tensor.dtype for tensor in load_file(run.model_dir / "model.safetensors").values()} == {torch.float16}


def test_killed_run_resumes_from_its_newest_checkpoint_under_fsdp(launches: dict[str, Launched], full_run: Run) -> None:
    # tests/training/interrupt.py killed it halfway through writing its second checkpoint (step 8).
    killed = launches["killed"].result()
    assert killed.returncode == -signal.SIGKILL, killed.output
    saved = [int(step) for step in re.findall(r"^saved checkpoint \S+/step-(\d{8})$", killed.output, re.MULTILINE)]
    assert saved == [4]
    assert re.search(r"^interrupted while writing \S+/\.tmp-step-00000008 \(written: model\.pt\)$", killed.output, re.M)

    # The conftest resumed it in the same folders as 2 FSDP ranks (gloo) with 1 block each.
    resumed = launches["resumed"].result()
    assert resumed.returncode == 0, resumed.output
    assert "full fine-tuning on 2 x cpu" in resumed.output
    match = re.search(r"^resumed from checkpoint \S+/step-\d{8} at step (\d+) ", resumed.output, re.MULTILINE)
    assert match, resumed.output
    assert int(match[1]) == 4  # the newest complete checkpoint: the half-written one is passed over
    assert train_losses(resumed.output)[0][0] == 5
    assert not list(resumed.checkpoint_dir.glob(".tmp-*"))  # and removed

    # The interruption changed nothing: same losses, weights and optimizer state as the uninterrupted run.
    reference = dict(train_losses(full_run.output))
    for done, loss in train_losses(resumed.output):
        assert loss == pytest.approx(reference[done], abs=1e-5)
    assert resumed.metrics["final"]["eval_loss"] == pytest.approx(full_run.metrics["final"]["eval_loss"], abs=1e-5)
    weights, expected = (load_file(run.model_dir / "model.safetensors") for run in (resumed, full_run))
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, atol=1e-5, rtol=1e-4)
    final = [checkpointing.latest(run.checkpoint_dir) for run in (resumed, full_run)]
    assert [folder.name for folder in final if folder] == ["step-00000024"] * 2
    optimizer, optimizer_expected = (checkpointing.load(folder, "optimizer.pt") for folder in final if folder)
    for name, state in optimizer_expected["state"].items():
        assert int(optimizer["state"][name]["step"]) == int(state["step"]) == 24
        torch.testing.assert_close(optimizer["state"][name]["exp_avg"], state["exp_avg"], atol=1e-6, rtol=1e-3)


def test_compiled_blocks_under_fsdp_train_as_the_eager_run_does(launches: dict[str, Launched], full_run: Run) -> None:
    compiled = launches["compiled"].result()
    assert compiled.returncode == 0, compiled.output
    assert "full fine-tuning on 2 x cpu" in compiled.output
    assert "compiling 2 blocks" in compiled.output
    assert "activation checkpointing on 1 block in 2" in compiled.output
    assert not compiled.checkpoint_dir.exists()
    reference = dict(train_losses(full_run.output))
    losses = train_losses(compiled.output)
    assert [done for done, _ in losses] == list(range(1, 25))
    for done, loss in losses:  # inductor's fused kernels round differently from eager ones
        assert loss == pytest.approx(reference[done], abs=1e-4), done
    assert compiled.metrics["final"]["eval_loss"] == pytest.approx(full_run.metrics["final"]["eval_loss"], abs=1e-4)


def test_lora_saves_merged_weights_that_match_the_adapter_model(
    launches: dict[str, Launched], tiny_model: Path
) -> None:
    from peft import LoraConfig, get_peft_model

    run = launches["lora"].result()
    assert run.returncode == 0, run.output
    assert "lora fine-tuning on 1 x cpu" in run.output
    assert not list(run.model_dir.glob("adapter*"))  # merged, never a bare adapter

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    adapter_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"]),
    )
    folder = checkpointing.latest(run.checkpoint_dir)
    assert folder is not None
    adapters = checkpointing.load(folder, "model.pt")
    assert adapters and all(".lora_A." in name or ".lora_B." in name for name in adapters)
    assert not adapter_model.load_state_dict(adapters, strict=False).unexpected_keys
    merged = AutoModelForCausalLM.from_pretrained(run.model_dir)
    input_ids = torch.randint(0, base.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits_base, logits_adapter, logits_merged = (
            m(input_ids=input_ids).logits for m in (base, adapter_model, merged)
        )
    torch.testing.assert_close(logits_merged, logits_adapter, atol=1e-5, rtol=1e-4)
    assert (logits_merged - logits_base).abs().max() > 1e-2  # the adapters did change the model
