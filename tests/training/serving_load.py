"""Load a folder train.py saved as the serving container's transformers does, and generate; prints one JSON line.

Run with the serving environment's Python (tests/serving/requirements.txt), never imported by the tests: it must use
that environment's transformers, not the training one's. Stdlib, torch and transformers only.
Usage: python serving_load.py MODEL_DIR PROMPT
"""

import json
import sys

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    folder, prompt = sys.argv[1], sys.argv[2]
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = tokenizer(prompt, return_tensors="pt")
    # fp32 for the logits the test compares with the training side's; the saved dtype for the generation, as served.
    exact, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    served = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
    with torch.no_grad():
        logits = exact(**inputs).logits[0]
        generated = served.generate(**inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    print(
        json.dumps(
            {
                "transformers": transformers.__version__,
                "architectures": config.architectures,
                "tokenizer_class": type(tokenizer).__name__,
                "input_ids": inputs["input_ids"][0].tolist(),
                "eos_token_id": tokenizer.eos_token_id,
                "loading_info": {key: sorted(map(str, value)) for key, value in info.items()},
                "served_dtype": str(served.dtype),
                "logits": logits.tolist(),
                "generated": tokenizer.decode(generated[0]),
                "new_tokens": generated.shape[1] - inputs["input_ids"].shape[1],
            }
        )
    )


if __name__ == "__main__":
    main()
