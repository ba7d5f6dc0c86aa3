"""What an import is told beyond the file: block size, source name, tokenizer, output-length estimates."""

from __future__ import annotations

from dataclasses import dataclass

from blendsim.errors import UserError


@dataclass(frozen=True)
class ImportOptions:
    """Options of ``trace import`` (each applies to the formats its help names).

    block_size: tokens per prefix block; None: the format's default (``DEFAULT_BLOCK``).
    source: the trace's source name; None: the file's name.
    progress: show a progress bar over the bytes read.
    model_dir: a Hugging Face model directory whose tokenizer (and chat template) tokenize an
        OpenAI batch.
    default_max_tokens: the output length of a batch line without ``max_tokens``.
    lengths_from: an earlier run's output file (OpenAI batch output JSONL): output lengths from its
        ``usage.completion_tokens``, joined on ``custom_id``.
    length_field: a dotted field of each batch line (``metadata.expected_tokens``) holding its
        expected output length.
    """

    block_size: int | None = None
    source: str | None = None
    progress: bool = False
    model_dir: str | None = None
    default_max_tokens: int | None = None
    lengths_from: str | None = None
    length_field: str | None = None

    def __post_init__(self) -> None:
        if self.block_size is not None and self.block_size < 1:
            raise UserError(f"block size must be >= 1, got {self.block_size}")
        if self.default_max_tokens is not None and self.default_max_tokens < 1:
            raise UserError(f"default max tokens must be >= 1, got {self.default_max_tokens}")
        if self.lengths_from and self.length_field:
            raise UserError("give one output-length estimate: an earlier run's results or a length field")

    def block(self, default: int) -> int:
        return self.block_size if self.block_size is not None else default
