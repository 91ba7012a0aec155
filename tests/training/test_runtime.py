"""Runtime checks of finetune.py that need no GPU: kernels for the GPU's architecture, precision choice."""

from pathlib import Path

import pytest
import torch
from finetune import checkpoint_folder, has_kernels, resolve_precision

CUDA_126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]  # PyTorch's CUDA 12.6 arch list
CUDA_128_27 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]  # 2.7 cu128: no Volta
# torch 2.8.0's CUDA 12.9 build (the training image's: 12.8's list, read from PyPI's 2.8.0, plus PTX for 12.0)
CUDA_129_28 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
CUDA_130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]  # 2.9 and newer DLCs: no Volta


@pytest.mark.parametrize(
    ("capability", "arch_list", "expected"),
    [
        ((7, 0), CUDA_126, True),  # V100 on a CUDA 12.6 build
        ((7, 0), CUDA_128_27, False),  # V100 on a build without sm_70: fail before training
        ((7, 0), CUDA_129_28, True),  # V100 on the training image's torch
        ((7, 0), CUDA_130, False),
        ((9, 0), CUDA_129_28, True),  # H100 on it
        ((8, 6), ["sm_80"], True),  # a cubin runs on a newer minor version of its major
        ((8, 0), ["sm_86"], False),
        ((9, 0), ["sm_80", "compute_80"], True),  # PTX is compiled for newer GPUs
        ((9, 0), ["sm_80"], False),
        ((9, 0), ["sm_90a"], True),
    ],
)
def test_has_kernels(capability: tuple[int, int], arch_list: list[str], expected: bool) -> None:
    assert has_kernels(capability, arch_list) is expected


def test_precision_on_the_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == torch.float32
    assert resolve_precision("bf16", cpu) == torch.bfloat16


@pytest.mark.parametrize(
    ("capability", "auto"), [((7, 0), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)]
)
def test_precision_follows_the_gpu(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], auto: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    gpu = torch.device("cuda", 0)
    assert resolve_precision("auto", gpu) == auto
    assert resolve_precision("fp32", gpu) == torch.float32
    if capability < (8, 0):
        with pytest.raises(
            ValueError, match=r"--precision: bf16 needs compute capability >= 8.0, this GPU has \(7, 0\)"
        ):
            resolve_precision("bf16", gpu)
    else:
        assert resolve_precision("bf16", gpu) == torch.bfloat16


def test_each_sagemaker_job_keeps_its_checkpoints_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINING_JOB_NAME", raising=False)
    assert checkpoint_folder("/opt/ml/checkpoints") == Path("/opt/ml/checkpoints")
    monkeypatch.setenv("TRAINING_JOB_NAME", "legal-gptj-tuning-001-a1b2c3d4")
    assert checkpoint_folder("/opt/ml/checkpoints") == Path("/opt/ml/checkpoints/legal-gptj-tuning-001-a1b2c3d4")


def test_a_model_loaded_with_another_attention_kernel_stops_the_run(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older transformers runs GPT-J eagerly whatever is asked; train.py must not silently train that way."""
    import finetune
    from arguments import ModelArguments

    load = finetune.AutoModelForCausalLM.from_pretrained

    def load_eager(*args: object, **kwargs: object) -> object:
        model = load(*args, **kwargs)
        model.config._attn_implementation = "eager"
        return model

    monkeypatch.setattr(finetune.AutoModelForCausalLM, "from_pretrained", load_eager)
    env = finetune.Distributed(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    with pytest.raises(RuntimeError, match="--attn_implementation sdpa: the model loaded with eager"):
        finetune.load_model(ModelArguments(model_name_or_path=str(tiny_model)), torch.float32, env)
