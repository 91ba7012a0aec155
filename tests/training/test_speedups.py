"""The speed options train.py and bench.py share (training/speedups.py); compiled blocks run end to end in
test_train_script.py."""

import re

import pytest
import speedups
import torch
from speedups import attention_kernels, checkpoint_activations
from transformers import AutoModelForCausalLM, GPTJConfig, PreTrainedModel

TINY = GPTJConfig(n_layer=4, n_embd=32, n_head=4, rotary_dim=4, vocab_size=64, n_positions=32)


def tiny_model() -> PreTrainedModel:
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(TINY, attn_implementation="sdpa")  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("every", "checkpointed"), [(1, [True] * 4), (2, [True, False, True, False]), (0, [False] * 4)]
)
def test_every_nth_block_recomputes_its_activations(every: int, checkpointed: list[bool]) -> None:
    model = tiny_model()
    checkpoint_activations(model, every)
    assert [bool(block.gradient_checkpointing) for block in model.transformer.h] == checkpointed


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="every_n_blocks: expected an integer >= 0, got -1"):
        checkpoint_activations(tiny_model(), -1)


def test_partial_checkpointing_and_the_cudnn_first_order_leave_loss_and_gradients_unchanged() -> None:
    """On the CPU cuDNN attention cannot run, so SDPA falls through to the next kernel in the order."""
    batch = torch.randint(TINY.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    reference, model = tiny_model(), tiny_model()
    reference.train()
    model.train()
    checkpoint_activations(model, 2)
    expected = reference(input_ids=batch, labels=batch).loss
    expected.backward()
    with attention_kernels(cudnn_first=True):
        loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    torch.testing.assert_close(loss, expected)
    for (name, parameter), (_, reference_parameter) in zip(
        model.named_parameters(), reference.named_parameters(), strict=True
    ):
        torch.testing.assert_close(parameter.grad, reference_parameter.grad, msg=name)


def test_cudnn_first_on_a_torch_without_a_kernel_order_is_an_error_naming_the_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(speedups, "SDPA_PRIORITY_ORDER", False)
    expected = re.escape("--cudnn_attention_first needs torch 2.6 or newer")
    with pytest.raises(RuntimeError, match=expected), attention_kernels(cudnn_first=True):
        pass
    with attention_kernels(cudnn_first=False):  # the default order needs nothing
        pass
