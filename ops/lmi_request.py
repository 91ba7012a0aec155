"""The original notebook's text-generation request, translated to the LMI container's schema, and its answers parsed.

Pure (no AWS, no model), so that anything that talks to GPT-J can reuse it: `make invoke` against the endpoints,
and a local rehearsal that queries a model loaded in-process (pass the prompt's exact token count there).

The notebook sent JumpStart's schema::

    {"text_inputs": "His Honour Judge Richards:", "max_length": 200, "num_return_sequences": 1,
     "top_k": 250, "top_p": 0.8, "do_sample": true, "temperature": 1}

The LMI container (DJL Serving, vLLM backend) documents this request schema (serving/docs/lmi/user_guides/
lmi_input_output_schema.md in deepjavalibrary/djl-serving)::

    {"inputs": "...", "parameters": {"max_new_tokens": ..., "do_sample": ..., "top_k": ..., "top_p": ...,
     "temperature": ..., "return_full_text": ...}}

and answers `{"generated_text": "..."}` (a list of such objects with `tgi_compat`). The translation:

* `text_inputs` -> `inputs`; `top_k`, `top_p`, `temperature`, `do_sample` keep their names and meaning. With
  sampling off only `do_sample: false` is sent (the async handler then decodes greedily).
* `max_length` counted the prompt's tokens too (Hugging Face `generate`); LMI's `max_new_tokens` does not. With the
  prompt's token count known (`prompt_tokens`, from a tokenizer) the translation is exact:
  `max_new_tokens = max_length - prompt_tokens`. Without it (the command line has no tokenizer) `max_new_tokens =
  max_length`: the answer may run up to the prompt's length longer than the notebook's, never shorter.
  An explicit `max_new_tokens` wins over both.
* `num_return_sequences`: the LMI schema returns one generation per request (vLLM's async handler answers with the
  first choice only), so N sequences are N requests; with sampling off they would all be the same, which is refused.
* `return_full_text` (default true): the notebook's JumpStart answer began with the prompt; LMI's default does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GPTJ_CONTEXT = 2048  # tokens, prompt and generation together
MAX_SEQUENCES = 8
NOTEBOOK_KEYS = {"text_inputs", "max_length", "num_return_sequences", "top_k", "top_p", "do_sample", "temperature"}


class RequestError(ValueError):
    """A generation request that cannot be sent as asked. The message is one line."""


class ResponseError(ValueError):
    """An answer in none of the known shapes, or one reporting a failed generation. The message is one line."""


@dataclass(frozen=True)
class Generation:
    """The notebook's generation parameters (its defaults), plus the two this translation adds."""

    text_inputs: str
    max_length: int = 200
    num_return_sequences: int = 1
    top_k: int = 250
    top_p: float = 0.8
    do_sample: bool = True
    temperature: float = 1.0
    max_new_tokens: int | None = None
    return_full_text: bool = True

    def __post_init__(self) -> None:
        checks = [
            (bool(self.text_inputs.strip()), "the prompt is empty"),
            (1 <= self.max_length <= GPTJ_CONTEXT, f"max_length must be from 1 to {GPTJ_CONTEXT} (GPT-J's context)"),
            (
                self.max_new_tokens is None or 1 <= self.max_new_tokens < GPTJ_CONTEXT,
                f"max_new_tokens must be from 1 to {GPTJ_CONTEXT - 1}",
            ),
            (
                1 <= self.num_return_sequences <= MAX_SEQUENCES,
                f"num_return_sequences must be from 1 to {MAX_SEQUENCES}",
            ),
            (self.top_k >= 0, "top_k must be 0 (off) or more"),
            (0 < self.top_p <= 1, "top_p must be greater than 0 and at most 1"),
            (self.temperature > 0, "temperature must be greater than 0"),
            (
                self.do_sample or self.num_return_sequences == 1,
                "num_return_sequences > 1 needs do_sample: greedy decoding returns the same text every time",
            ),
        ]
        for holds, message in checks:
            if not holds:
                raise RequestError(message)

    @classmethod
    def from_notebook(cls, request: Mapping[str, Any]) -> Generation:
        """The notebook's JumpStart request as it was sent (unknown keys are refused, not dropped)."""
        unknown = set(request) - NOTEBOOK_KEYS
        if unknown:
            raise RequestError(f"not a key of the notebook's request: {', '.join(sorted(unknown))}")
        if "text_inputs" not in request:
            raise RequestError("the request has no text_inputs")
        return cls(**request)


def new_tokens(generation: Generation, prompt_tokens: int | None = None) -> int:
    """`max_new_tokens` for LMI: see the module docstring for how `max_length` translates."""
    if generation.max_new_tokens is not None:
        return generation.max_new_tokens
    if prompt_tokens is None:
        return generation.max_length
    remaining = generation.max_length - prompt_tokens
    if remaining < 1:
        raise RequestError(
            f"the prompt's {prompt_tokens} tokens already reach max_length={generation.max_length}: "
            "raise max_length or pass max_new_tokens"
        )
    return remaining


def lmi_request(generation: Generation, prompt_tokens: int | None = None) -> dict[str, Any]:
    """One LMI request body (one generated sequence)."""
    parameters: dict[str, Any] = {
        "max_new_tokens": new_tokens(generation, prompt_tokens),
        "do_sample": generation.do_sample,
    }
    if generation.do_sample:
        parameters |= {"top_k": generation.top_k, "top_p": generation.top_p, "temperature": generation.temperature}
    parameters["return_full_text"] = generation.return_full_text
    return {"inputs": generation.text_inputs, "parameters": parameters}


def lmi_requests(generation: Generation, prompt_tokens: int | None = None) -> list[dict[str, Any]]:
    """The request bodies for all `num_return_sequences` (one request each)."""
    return [lmi_request(generation, prompt_tokens) for _ in range(generation.num_return_sequences)]


def generated_texts(body: bytes | str | Any) -> list[str]:
    """The generated texts in an answer, in order. Accepts the LMI shapes, the notebook's JumpStart shapes
    (`[[{"generated_text": ...}]]`, `{"generated_texts": [...]}`) and OpenAI completions (`{"choices": [...]}`)."""
    data = json.loads(body) if isinstance(body, bytes | str) else body
    texts = _texts(data)
    if texts is None:
        raise ResponseError(f"no generated text in the answer: {_excerpt(data)}")
    return texts


def _texts(data: Any) -> list[str] | None:
    if isinstance(data, list) and data:
        parts = [_texts(item) for item in data]
        if all(part is not None for part in parts):
            return [text for part in parts for text in part or []]
        return None
    if not isinstance(data, dict):
        return None
    if "error" in data:
        raise ResponseError(f"the container reported an error: {data['error']}")
    if isinstance(data.get("generated_text"), str):
        details = data.get("details") or {}
        if isinstance(details, dict) and details.get("finish_reason") == "error":
            raise ResponseError("the container reported an error during generation (finish_reason: error)")
        return [data["generated_text"]]
    if isinstance(data.get("generated_texts"), list) and all(isinstance(t, str) for t in data["generated_texts"]):
        return list(data["generated_texts"])
    choices = data.get("choices")
    if isinstance(choices, list) and choices and all(isinstance(c, dict) and "text" in c for c in choices):
        return [str(choice["text"]) for choice in choices]
    return None


def _excerpt(data: Any, limit: int = 200) -> str:
    text = json.dumps(data) if not isinstance(data, str) else data
    return text if len(text) <= limit else text[:limit] + "..."
