"""The plan file beside an ordered batch: ``ORDERED.plan.json`` for ``ORDERED.jsonl``.

``plan-batch`` writes it and ``run-batch`` reads it. It says which batch and ordered file it belongs
to (names and SHA-256), the target the order was made for, the policy chosen and every policy's
prediction, where the output lengths came from, the engine the predictions assume (blendsim's
``EngineConfig`` and the vLLM settings, so ``run-batch`` runs that engine), and for the ``replay``
target the pacing: each request's release step and each step's prefill cap, in the ordered file's
line order (:class:`blendsim.executor.pacing.Pacing`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blendsim.errors import UserError
from blendsim.executor.pacing import Pacing
from blendsim.outputs import write_json

FORMAT = "blendsim-batch-plan/1"
TARGETS = ("run-batch", "replay")


def beside(path: str | os.PathLike[str], suffix: str) -> Path:
    """A file beside a batch or results file: ``x.jsonl`` (or ``x.jsonl.gz``) -> ``x<suffix>``."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(".gz").removesuffix(".jsonl") + suffix)


def plan_path(ordered: str | os.PathLike[str]) -> Path:
    """Where the plan of an ordered batch file lives: ``x.jsonl`` -> ``x.plan.json``."""
    return beside(ordered, ".plan.json")


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class BatchPlan:
    """A plan file's contents (module docstring); ``predictions`` maps policy -> its numbers."""

    target: str
    policy: str
    batch: dict[str, Any]
    ordered: dict[str, Any]
    lengths: dict[str, Any]
    engine: dict[str, Any]
    vllm: dict[str, Any]
    profile: str
    predictions: dict[str, dict[str, Any]]
    order: list[int] = field(default_factory=list)  # ordered line k is batch line order[k] (0-based)
    release_steps: list[int] | None = None
    prefill_caps: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def predicted(self) -> dict[str, Any]:
        return self.predictions[self.policy]

    def pacing(self) -> Pacing:
        rel = None if self.release_steps is None else np.asarray(self.release_steps, dtype=np.int64)
        caps = None if self.prefill_caps is None else np.asarray(self.prefill_caps, dtype=np.int64)
        return Pacing(rel, caps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "target": self.target,
            "policy": self.policy,
            "batch": self.batch,
            "ordered": self.ordered,
            "lengths": self.lengths,
            "engine": self.engine,
            "vllm": self.vllm,
            "profile": self.profile,
            "predictions": self.predictions,
            **self.extra,
            "order": self.order,
            "pacing": None
            if self.release_steps is None
            else {"release_steps": self.release_steps, "prefill_caps": self.prefill_caps},
        }

    def write(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict(), indent=1)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> BatchPlan:
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserError(f"plan file {str(path)!r} does not exist") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"plan file {str(path)!r} is not readable JSON ({exc})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise UserError(f"plan file {str(path)!r} is not a {FORMAT} file (from `blendsim plan-batch`)")
        pacing = d.get("pacing") or {}
        known = {
            "format",
            "target",
            "policy",
            "batch",
            "ordered",
            "lengths",
            "engine",
            "vllm",
            "profile",
            "predictions",
            "order",
            "pacing",
        }
        return cls(
            target=d["target"],
            policy=d["policy"],
            batch=d["batch"],
            ordered=d["ordered"],
            lengths=d["lengths"],
            engine=d["engine"],
            vllm=d["vllm"],
            profile=d["profile"],
            predictions=d["predictions"],
            order=list(d.get("order", [])),
            release_steps=pacing.get("release_steps"),
            prefill_caps=pacing.get("prefill_caps"),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def check_matches(self, ordered: str | os.PathLike[str]) -> None:
        """The plan is the one made for ``ordered`` (same bytes); a UserError otherwise."""
        if file_sha256(ordered) != self.ordered.get("sha256"):
            raise UserError(
                f"{str(ordered)!r} is not the file its plan was made for (its SHA-256 differs from the "
                "plan's); rerun plan-batch, or run it without the plan (--no-plan)"
            )
