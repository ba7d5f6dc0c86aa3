"""Prompt token ids as vLLM computes them, from the model directory's Hugging Face tokenizer.

vLLM 0.32's chat endpoint (``vllm/renderers/hf.py``: ``render_messages``, ``safe_apply_chat_template``)
parses the messages into a conversation, then calls the tokenizer's
``apply_chat_template(conversation, chat_template=<the tokenizer's>, tokenize=True,
add_generation_prompt=..., continue_final_message=..., return_dict=False)``: the rendered text is
tokenized without adding special tokens. A message's content is a string, or (templates that loop over
content parts, vLLM's "openai" content format) a list of text parts; for "string" templates the text
parts are joined with newlines. A ``developer`` message becomes ``system`` when the template does not
name that role. The completions endpoint tokenizes its prompt with special tokens added. A test holds
this module to vLLM's own function (``tests/test_importers_vllm.py``).
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import Any

from blendsim.errors import UserError

# a template that loops over a message's content parts: vLLM's "openai" content format
_LOOPS_OVER_CONTENT = re.compile(r"for\s+\w+\s+in\s+\w+(\[['\"]content['\"]\]|\.content)")
INSTALL_HINT = 'pip install "blendsim[batch]" (transformers, for the model\'s tokenizer)'


class PromptTokenizer:
    """The tokenizer of one model directory, loaded once (``transformers.AutoTokenizer``)."""

    def __init__(self, model_dir: str) -> None:
        if not os.path.isdir(model_dir):
            raise UserError(f"model directory {model_dir!r} does not exist (it holds the tokenizer)")
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise UserError(f"tokenizing a batch needs transformers; {INSTALL_HINT}") from None
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(model_dir)
        except Exception as exc:  # transformers raises many kinds for a folder without a tokenizer
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"model directory {model_dir!r} has no usable tokenizer: {first[:200]}") from None
        self.model_dir = model_dir

    @cached_property
    def template(self) -> str:
        tmpl = getattr(self.tokenizer, "chat_template", None)
        if not isinstance(tmpl, str) or not tmpl:
            raise UserError(
                f"the tokenizer in {self.model_dir!r} has no chat template; chat requests need one"
            )
        return tmpl

    @cached_property
    def content_parts(self) -> bool:
        return bool(_LOOPS_OVER_CONTENT.search(self.template))

    def chat(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, continue_final: bool = False
    ) -> list[int]:
        """Token ids of a chat prompt (messages already checked: role and text content)."""
        conversation = [self._message(m) for m in messages]
        ids = self.tokenizer.apply_chat_template(
            conversation,
            chat_template=self.template,
            tokenize=True,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final,
            return_dict=False,
        )
        return [int(t) for t in ids]

    def completion(self, prompt: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(prompt, add_special_tokens=True)]

    def _message(self, m: dict[str, Any]) -> dict[str, Any]:
        role = m["role"]
        if role == "developer" and "developer" not in self.template:
            role = "system"
        content = m["content"]
        texts = [content] if isinstance(content, str) else [p["text"] for p in content]
        if self.content_parts:
            return {"role": role, "content": [{"type": "text", "text": t} for t in texts]}
        return {"role": role, "content": "\n".join(texts)}
