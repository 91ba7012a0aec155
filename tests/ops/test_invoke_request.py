"""The notebook's request translated to the LMI container's documented schema, and its documented answers parsed.

The documented examples below are copied from the LMI schema document, deepjavalibrary/djl-serving
serving/docs/lmi/user_guides/lmi_input_output_schema.md (the same text on the 0.36.0-lmi18-dlc and 0.36.0-lmi27-dlc
branches, the newest release branch there; LMI v28's was not published in that repository when read), and the
conversion the vLLM async handler applies to that schema, engines/python/setup/djl_python/lmi_vllm/
request_response_utils.py (`convert_lmi_schema_to_completion_request`, lmi27 branch), restated here so that a
parameter it would drop or misread fails. The completion fields are vLLM 0.26.0's (the served vLLM).
"""

from __future__ import annotations

from typing import Any

import pytest

from ops.lmi_request import (
    Generation,
    RequestError,
    ResponseError,
    generated_texts,
    lmi_request,
    lmi_requests,
    new_tokens,
)

# The original notebook's request (DESIGN.md §1) and how it read the answer: json[0][0]["generated_text"].
NOTEBOOK_REQUEST = {
    "text_inputs": "His Honour Judge Richards:",
    "max_length": 200,
    "num_return_sequences": 1,
    "top_k": 250,
    "top_p": 0.8,
    "do_sample": True,
    "temperature": 1,
}

# --- documented (lmi_input_output_schema.md) --------------------------------------------------------------------
DOCUMENTED_REQUEST_FIELDS = {"inputs", "parameters", "stream"}
# "GenerationParameters: The following parameters are available with every rolling batch backend".
DOCUMENTED_GENERATION_PARAMETERS = {
    "do_sample",
    "seed",
    "temperature",
    "repetition_penalty",
    "top_k",
    "top_p",
    "max_new_tokens",
    "details",
    "return_full_text",
    "stop_sequences",
    "decoder_input_details",
}
DOCUMENTED_RESPONSE = {
    "generated_text": "Deep Learning is a really cool field",
    "details": {
        "finish reason": "length",
        "generated_tokens": 8,
        "inputs": "What is Deep Learning?",
        "tokens": [],
    },
}
DOCUMENTED_TGI_COMPAT_RESPONSE = [DOCUMENTED_RESPONSE]
DOCUMENTED_DYNAMIC_BATCH_RESPONSE = [{"generated_text": "Deep Learning is a really cool field"}]
DOCUMENTED_VALIDATION_ERROR = {"error": "<error details>", "code": 424}
DOCUMENTED_GENERATION_ERROR = {
    "generated_text": "",
    "details": {"finish_reason": "error", "generated_tokens": None, "inputs": None, "tokens": None},
}

# vLLM CompletionRequest fields the converted request may set: all of them are fields of vLLM 0.26.0's
# CompletionRequest (vllm/entrypoints/openai/completion/protocol.py in its wheel), whose list is below.
VLLM_0_26_COMPLETION_REQUEST = {
    *("add_special_tokens", "allowed_token_ids", "bad_words", "cache_salt", "ec_transfer_params", "echo"),
    *("frequency_penalty", "ignore_eos", "include_stop_str_in_output", "kv_transfer_params", "length_penalty"),
    *("logit_bias", "logprob_token_ids", "logprobs", "max_tokens", "min_p", "min_tokens", "model", "n"),
    *("presence_penalty", "priority", "prompt", "prompt_embeds", "prompt_logprobs", "repetition_detection"),
    *("repetition_penalty", "request_id", "response_format", "return_token_ids", "return_token_offsets"),
    *("return_tokens_as_token_ids", "seed", "skip_special_tokens", "spaces_between_special_tokens", "stop"),
    *("stop_token_ids", "stream", "stream_options", "structured_outputs", "suffix", "temperature"),
    *("thinking_token_budget", "top_k", "top_p", "truncate_prompt_tokens", "truncation_side", "use_beam_search"),
    *("user", "vllm_xargs"),
}
VLLM_COMPLETION_FIELDS = {
    "prompt",
    "model",
    "max_tokens",
    "echo",
    "truncate_prompt_tokens",
    "n",
    "ignore_eos",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "repetition_penalty",
    "stop",
    "logprobs",
}


def test_the_fields_the_handler_sets_exist_in_the_served_vllm() -> None:
    assert VLLM_COMPLETION_FIELDS <= VLLM_0_26_COMPLETION_REQUEST


def convert_like_the_async_handler(payload: dict[str, Any]) -> dict[str, Any]:
    """`convert_lmi_schema_to_completion_request`, minus the pydantic model it feeds."""
    payload = {**payload, "parameters": dict(payload.get("parameters", {})), "model": "lmi"}
    parameters = payload["parameters"]
    completion = {
        "prompt": payload.pop("inputs"),
        "model": payload.pop("model"),
        "max_tokens": parameters.pop("max_new_tokens", 30),
        "echo": parameters.pop("return_full_text", False),
        "truncate_prompt_tokens": parameters.pop("truncate", None),
        "n": parameters.pop("top_n_tokens", 1),
        "ignore_eos": parameters.pop("ignore_eos_token", False),
        "stream": payload.pop("stream", False),
    }
    parameters.pop("details", False)
    do_sample = parameters.pop("do_sample", None)
    if do_sample is not None and not do_sample:
        parameters["temperature"] = 0.0
    completion.update(parameters)
    return completion


def test_the_notebooks_request_translates_to_the_documented_schema() -> None:
    request = lmi_request(Generation.from_notebook(NOTEBOOK_REQUEST))
    assert request == {
        "inputs": "His Honour Judge Richards:",
        "parameters": {
            "max_new_tokens": 200,
            "do_sample": True,
            "top_k": 250,
            "top_p": 0.8,
            "temperature": 1,
            "return_full_text": True,
        },
    }
    assert set(request) <= DOCUMENTED_REQUEST_FIELDS
    assert set(request["parameters"]) <= DOCUMENTED_GENERATION_PARAMETERS


def test_the_async_handler_turns_it_into_the_same_sampling() -> None:
    completion = convert_like_the_async_handler(lmi_request(Generation.from_notebook(NOTEBOOK_REQUEST)))
    assert set(completion) <= VLLM_COMPLETION_FIELDS
    assert completion["prompt"] == "His Honour Judge Richards:"
    assert (completion["max_tokens"], completion["echo"], completion["n"]) == (200, True, 1)
    assert (completion["top_k"], completion["top_p"], completion["temperature"]) == (250, 0.8, 1)


def test_greedy_decoding_sends_only_do_sample_false() -> None:
    request = lmi_request(Generation("Lord Reed:", do_sample=False, max_new_tokens=64))
    assert request["parameters"] == {"max_new_tokens": 64, "do_sample": False, "return_full_text": True}
    assert convert_like_the_async_handler(request)["temperature"] == 0.0


def test_max_length_counts_the_prompt_only_when_its_tokens_are_known() -> None:
    generation = Generation("His Honour Judge Richards:", max_length=200)
    assert new_tokens(generation) == 200  # the command line has no tokenizer: an upper bound
    assert new_tokens(generation, prompt_tokens=7) == 193  # exact, as in the notebook
    assert lmi_request(generation, prompt_tokens=7)["parameters"]["max_new_tokens"] == 193
    assert new_tokens(Generation("x", max_length=200, max_new_tokens=50), prompt_tokens=7) == 50
    with pytest.raises(RequestError, match="already reach max_length=200"):
        new_tokens(generation, prompt_tokens=200)


def test_several_sequences_are_several_requests() -> None:
    requests = lmi_requests(Generation("Lord Reed:", num_return_sequences=3))
    assert len(requests) == 3 and all(r == requests[0] for r in requests)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"text_inputs": " "}, "the prompt is empty"),
        ({"max_length": 0}, "max_length must be from 1 to 2048"),
        ({"max_new_tokens": 2048}, "max_new_tokens must be from 1 to 2047"),
        ({"num_return_sequences": 9}, "num_return_sequences must be from 1 to 8"),
        ({"top_k": -1}, "top_k must be 0"),
        ({"top_p": 1.5}, "top_p must be greater than 0 and at most 1"),
        ({"temperature": 0}, "temperature must be greater than 0"),
        ({"num_return_sequences": 2, "do_sample": False}, "needs do_sample"),
    ],
)
def test_requests_that_cannot_be_sent_as_asked(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        Generation(**{**NOTEBOOK_REQUEST, **changes})


def test_notebook_keys_are_checked() -> None:
    with pytest.raises(RequestError, match="not a key of the notebook's request: max_tokens"):
        Generation.from_notebook({**NOTEBOOK_REQUEST, "max_tokens": 5})
    with pytest.raises(RequestError, match="no text_inputs"):
        Generation.from_notebook({"max_length": 5})


@pytest.mark.parametrize(
    "answer",
    [DOCUMENTED_RESPONSE, DOCUMENTED_TGI_COMPAT_RESPONSE, DOCUMENTED_DYNAMIC_BATCH_RESPONSE],
)
def test_documented_answers_parse(answer: Any) -> None:
    assert generated_texts(answer) == ["Deep Learning is a really cool field"]


def test_the_notebooks_answer_shape_and_bytes_parse() -> None:
    assert generated_texts(b'[[{"generated_text": "His Honour Judge Richards: ..."}]]') == [
        "His Honour Judge Richards: ..."
    ]
    assert generated_texts('{"generated_texts": ["a", "b"]}') == ["a", "b"]
    assert generated_texts({"choices": [{"text": "a"}, {"text": "b"}]}) == ["a", "b"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (DOCUMENTED_VALIDATION_ERROR, "the container reported an error: <error details>"),
        (DOCUMENTED_GENERATION_ERROR, "finish_reason: error"),
        ({"outputs": ["This"]}, "no generated text in the answer"),
        ([], "no generated text in the answer"),
        ([{"generated_text": "a"}, {"other": 1}], "no generated text in the answer"),
    ],
)
def test_errors_and_unknown_shapes_are_reported(answer: Any, message: str) -> None:
    with pytest.raises(ResponseError, match=message):
        generated_texts(answer)
