"""The notebook's request translated to the LMI container's documented schema, and its documented answers parsed.

The documented examples below are copied from the LMI schema document, deepjavalibrary/djl-serving
serving/docs/lmi/user_guides/lmi_input_output_schema.md (the same text on the 0.36.0-lmi18-dlc and 0.36.0-lmi27-dlc
branches, the newest release branch there; LMI v28's was not published in that repository when read), and the
conversion the vLLM async handler applies to that schema, engines/python/setup/djl_python/lmi_vllm/
request_response_utils.py (`convert_lmi_schema_to_completion_request`, lmi27 branch), restated here so that a
parameter it would drop or misread fails. What it produces is checked against the CompletionRequest fields of the
served vLLM (0.26.0, LMI v28's): vLLM's request models accept unknown fields and ignore them (`OpenAIBaseModel`,
`extra="allow"`), so a parameter vLLM does not know would be dropped without an error.
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

# The fields of vLLM 0.26.0's CompletionRequest, its own and those it inherits (vllm/entrypoints/openai/completion/
# protocol.py in the PyPI wheel vllm-0.26.0-cp38-abi3-manylinux_2_28_x86_64.whl, read with `ast`: the annotated class
# attributes of CompletionRequest and its bases). LMI v28 installs its own build of vLLM v0.26.0 with six cherry-picked
# pull requests (djl-serving #3065: #44675 #48210 #48363 #48402 #48983 #50040); whether one touches this model was not
# read.
# vLLM 0.28.0's (LMI v29) has these and three more: routed_experts_prompt_start, session_id, stream_interval.
SERVED_VLLM_COMPLETION_REQUEST = frozenset(
    {
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
)


def convert_like_the_async_handler(payload: dict[str, Any]) -> dict[str, Any]:
    """`convert_lmi_schema_to_completion_request` (lmi27 branch), minus the pydantic model it feeds; the handler
    adds `model` (its served model name, "lmi" by default) when the payload has none."""
    payload = {**payload, "parameters": dict(payload.get("parameters", {}))}
    payload.setdefault("model", "lmi")
    parameters = payload["parameters"]
    completion = {
        "model": payload.pop("model"),
        "prompt": payload.pop("inputs"),
        "max_tokens": parameters.pop("max_new_tokens", 30),
        "echo": parameters.pop("return_full_text", False),
        "truncate_prompt_tokens": parameters.pop("truncate", None),
        "n": parameters.pop("top_n_tokens", 1),
        "ignore_eos": parameters.pop("ignore_eos_token", False),
        "stream": payload.pop("stream", False),
    }
    if completion["stream"]:
        completion["logprobs"] = 1
        completion["return_tokens_as_token_ids"] = True
        completion["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
        completion.pop("echo", False)
    if parameters.pop("details", False):
        completion["logprobs"] = 1
        completion["return_tokens_as_token_ids"] = True
        if parameters.pop("decoder_input_details", False):
            completion["prompt_logprobs"] = 1
    do_sample = parameters.pop("do_sample", None)
    if do_sample is not None and not do_sample:
        parameters["temperature"] = 0.0
    completion.update(parameters)
    return completion


def unknown_to_the_served_vllm(completion: dict[str, Any]) -> set[str]:
    return set(completion) - SERVED_VLLM_COMPLETION_REQUEST


# Every shape of request the translation produces: sampling as the notebook did, greedy, without the prompt in the
# answer, an explicit max_new_tokens, max_length with the prompt's tokens known, no top-k.
SENT = {
    "notebook": (Generation.from_notebook(NOTEBOOK_REQUEST), None),
    "greedy": (Generation("Lord Reed:", do_sample=False, max_new_tokens=64), None),
    "no_full_text": (Generation("Lord Reed:", return_full_text=False, temperature=0.7), None),
    "max_new_tokens": (Generation("Lord Reed:", max_length=100, max_new_tokens=50, top_k=0, top_p=1.0), None),
    "prompt_tokens_known": (Generation("His Honour Judge Richards:", max_length=200), 7),
}


@pytest.mark.parametrize("name", sorted(SENT))
def test_every_request_we_send_reaches_the_served_vllm_as_fields_it_knows(name: str) -> None:
    generation, prompt_tokens = SENT[name]
    completion = convert_like_the_async_handler(lmi_request(generation, prompt_tokens=prompt_tokens))
    assert unknown_to_the_served_vllm(completion) == set(), "vLLM would ignore these without an error"


def test_a_parameter_vllm_does_not_know_is_caught() -> None:
    """The check above can fail: a JumpStart-only name passed through LMI's parameters reaches vLLM as it is."""
    payload = lmi_request(Generation("Lord Reed:"))
    payload["parameters"]["num_return_sequences"] = 3
    assert unknown_to_the_served_vllm(convert_like_the_async_handler(payload)) == {"num_return_sequences"}


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
