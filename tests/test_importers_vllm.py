"""The OpenAI importer tokenizes chat prompts exactly as the pinned vLLM does (skipped without vLLM)."""

from __future__ import annotations

import pytest
from vllm_helpers import NEEDS_VLLM

from blendsim.executor.model_prep import default_model_dir
from blendsim.traces.importers.chat import PromptTokenizer

pytestmark = NEEDS_VLLM

CONVERSATIONS = [
    [{"role": "user", "content": "Write a haiku about caches."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2 + 2?"}],
    [
        {"role": "system", "content": "You are a Python expert."},
        {"role": "user", "content": "def f(x):\n    return x\n"},
        {"role": "assistant", "content": "It returns its argument."},
        {"role": "user", "content": "And for x = 3?"},
    ],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_chat_prompt_ids_equal_vllms(messages: list[dict[str, str]]) -> None:
    from vllm.renderers.hf import safe_apply_chat_template

    tok = PromptTokenizer(str(default_model_dir()))
    ours = tok.chat(messages)
    # vLLM 0.32's chat endpoint: render_messages -> safe_apply_chat_template with the request's defaults
    theirs = safe_apply_chat_template(
        None,
        tok.tokenizer,
        messages,
        chat_template=tok.template,
        add_generation_prompt=True,
        continue_final_message=False,
        documents=None,
        reasoning_effort=None,
        return_dict=False,
    )
    assert ours == list(theirs)
