"""GPT-J's SDPA attention in the pinned transformers: really used, and equal to the eager reference."""

from unittest import mock

import torch
from transformers import GPTJConfig, GPTJForCausalLM


def tiny_model(attn_implementation: str) -> GPTJForCausalLM:
    config = GPTJConfig(vocab_size=96, n_positions=64, n_embd=64, n_layer=2, n_head=4, rotary_dim=8)
    config._attn_implementation = attn_implementation  # what from_pretrained(attn_implementation=...) sets
    torch.manual_seed(0)
    model = GPTJForCausalLM(config)
    model.train(False)
    return model


def test_sdpa_runs_torch_sdpa_and_matches_eager_logits() -> None:
    sdpa, eager = tiny_model("sdpa"), tiny_model("eager")
    assert (sdpa.config._attn_implementation, eager.config._attn_implementation) == ("sdpa", "eager")
    input_ids = torch.randint(0, 96, (3, 48), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :5] = 0  # a left-padded row exercises the masked path too
    sdpa_function = torch.nn.functional.scaled_dot_product_attention
    with (
        torch.no_grad(),
        mock.patch.object(torch.nn.functional, "scaled_dot_product_attention", wraps=sdpa_function) as spy,
    ):
        sdpa_logits = sdpa(input_ids=input_ids, attention_mask=attention_mask).logits
    assert spy.call_count == 2  # once per layer: no silent fallback to eager
    with torch.no_grad():
        eager_logits = eager(input_ids=input_ids, attention_mask=attention_mask).logits
    real = attention_mask.bool()
    torch.testing.assert_close(sdpa_logits[real], eager_logits[real], atol=1e-5, rtol=1e-4)
