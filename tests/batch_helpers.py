"""Small batch files and a tiny offline tokenizer for the importer and run-batch tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_SENTENCE = (
    "system user assistant you are a helpful terse expert answer the question what is two plus three "
    "four five six seven eight nine ten explain why sky blue write code sort list python function "
    "return value hello there thanks now again please short long story about cats dogs"
)
WORDS = _SENTENCE.split()
# SmolLM2's template (as its model directory ships it), with a fixed default system prompt
TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def tiny_model_dir(path: Path) -> Path:
    """A folder with a word-level Hugging Face tokenizer over WORDS and a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate([*specials, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tok.chat_template = TEMPLATE
    path.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(path)
    return path


def chat_line(
    cid: str, messages: list[dict[str, Any]], max_tokens: int | None = 8, **body: Any
) -> dict[str, Any]:
    b: dict[str, Any] = {"model": "m", "messages": messages, **body}
    if max_tokens is not None:
        b["max_tokens"] = max_tokens
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": b}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path
