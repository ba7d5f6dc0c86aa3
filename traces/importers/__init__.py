"""Importers of real traces and batch files, one module per format, and the exporter.

``import_trace(path, fmt, options)`` streams the file (bounded memory, a progress bar over its
bytes), names the line and field of a bad record, and returns a Trace whose metadata keeps the
file's name, size, hash and statistics (``imported``, ``source_stats``); writing it is the caller's,
atomically (:func:`blendsim.traces.io.write_trace`). Formats:

* ``openai``: OpenAI Batch input JSONL, chat or completion bodies, tokenized with a model's tokenizer
  (:mod:`.openai`);
* ``hash-ids``: Mooncake / Qwen-Bailian JSONL with per-block ``hash_ids`` (:mod:`.hash_ids`);
* ``vidur``: Vidur and Sarathi-Serve CSVs, ``num_prefill_tokens,num_decode_tokens``;
* ``splitwise``: splitwise-sim CSVs, ``prompt_size,token_size`` (:mod:`.lengths_only`);
* ``llmservingsim``: LLMServingSim JSONL, ``input_toks,output_toks[,input_tok_ids]`` (:mod:`.llmservingsim`).
"""

from __future__ import annotations

from collections.abc import Callable

from blendsim.errors import unknown
from blendsim.traces.importers.options import ImportOptions
from blendsim.traces.trace import Trace

IMPORT_FORMATS: dict[str, str] = {
    "openai": "OpenAI Batch JSONL (chat or completion bodies); needs --model-dir for the tokenizer",
    "hash-ids": "Mooncake / Qwen-Bailian JSONL: input_length, output_length, hash_ids (--block-size 512)",
    "vidur": "Vidur / Sarathi-Serve CSV: num_prefill_tokens, num_decode_tokens[, arrived_at]",
    "splitwise": "splitwise-sim CSV: prompt_size, token_size (and its other columns)",
    "llmservingsim": "LLMServingSim JSONL: input_toks, output_toks[, input_tok_ids]",
}


def _reader(fmt: str) -> Callable[[str, ImportOptions], Trace]:
    if fmt == "openai":
        from blendsim.traces.importers.openai import read_openai

        return read_openai
    if fmt == "hash-ids":
        from blendsim.traces.importers.hash_ids import read_hash_ids

        return read_hash_ids
    if fmt == "llmservingsim":
        from blendsim.traces.importers.llmservingsim import read_llmservingsim

        return read_llmservingsim
    from blendsim.traces.importers.lengths_only import read_splitwise, read_vidur

    return read_vidur if fmt == "vidur" else read_splitwise


def import_trace(path: str, fmt: str, options: ImportOptions | None = None) -> Trace:
    if fmt not in IMPORT_FORMATS:
        raise unknown("import format", fmt, tuple(IMPORT_FORMATS))
    return _reader(fmt)(path, options or ImportOptions())


__all__ = ["IMPORT_FORMATS", "ImportOptions", "import_trace"]
