"""The one output helper (blendsim/outputs.py): files checked at the edge and written whole, folders
whose outputs appear together or not at all, resumable folders under a manifest, strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from blendsim.errors import UserError
from blendsim.output_folders import MANIFEST, output_folder, read_manifest, resumable_folder
from blendsim.outputs import atomic_outputs, json_text, output_file


def test_output_file_refuses_what_it_must_not_replace(tmp_path: Path) -> None:
    trace = tmp_path / "t.parquet"
    trace.write_text("input")
    link = tmp_path / "link"
    link.symlink_to(trace)
    with pytest.raises(UserError, match="is also an input"):
        output_file(link, "-o", inputs=[trace])  # the same file through a link
    assert output_file(link, "-o") == trace  # a link is followed: its target gets written
    with pytest.raises(UserError, match="folder .* does not exist"):
        output_file(tmp_path / "missing" / "x", "-o")


def test_atomic_outputs_appear_together_or_not_at_all(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.parquet"
    with pytest.raises(KeyboardInterrupt), atomic_outputs(a, b) as (ta, tb):
        ta.write_text("1")
        tb.write_text("2")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_outputs(a, b) as (ta, tb):
        ta.write_text("1")
        tb.write_text("2")
    assert a.read_text() == "1" and b.read_text() == "2" and len(list(tmp_path.iterdir())) == 2


def test_output_folder_is_staged_and_replaces_only_its_own_earlier_run(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "run"
    with pytest.raises(RuntimeError), output_folder(out, "--out", "simulate") as folder:
        (folder.work / "half.json").write_text("{}")
        assert not out.exists()  # nothing appears at --out while the verb runs
        raise RuntimeError("a bug halfway")
    assert list(tmp_path.iterdir()) == [], "the failed run left its staging or the parents it made"
    with output_folder(out, "--out", "simulate") as folder:
        folder.record.update(seed=3, profile="a100-80g")
        (folder.work / "fifo.json").write_text("{}")
    manifest = read_manifest(out)
    assert manifest and manifest["verb"] == "simulate" and manifest["complete"]
    assert manifest["files"] == ["fifo.json"] and manifest["provenance"]["seed"] == 3
    with output_folder(out, "--out", "simulate") as folder:  # its own earlier run: replaced whole
        (folder.work / "blend.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["blend.json", MANIFEST]
    assert [p.name for p in out.parent.iterdir()] == ["run"], "a staging or old folder was left"
    other = "outputs of `blendsim simulate`, not of `blendsim execute`"
    with pytest.raises(UserError, match=other), output_folder(out, "--out", "execute"):
        pass


def test_resumable_folder_keeps_finished_parts_and_refuses_other_settings(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt), resumable_folder(out, "--out", "sweep", {"requests": 10}):
        raise KeyboardInterrupt  # nothing finished: nothing left
    assert not out.exists()
    with pytest.raises(KeyboardInterrupt), resumable_folder(out, "--out", "sweep", {"requests": 10}) as f:
        (out / "cell.json").write_text("{}")
        f.finished("cell.json", "ok")
        raise KeyboardInterrupt
    assert "1 finished part(s) kept" in capsys.readouterr().err
    assert read_manifest(out)["complete"] is False  # type: ignore[index]
    with resumable_folder(out, "--out", "sweep", {"requests": 10}) as f:
        assert f.earlier("cell.json") == out / "cell.json"
    assert read_manifest(out)["complete"] is True  # type: ignore[index]
    other = resumable_folder(out, "--out", "sweep", {"requests": 20})
    with pytest.raises(UserError, match="requests 10 there, 20 now"), other:
        pass


def test_json_is_strict_and_plain() -> None:
    text = json_text({"a": math.inf, "b": [np.float64("nan"), np.int64(3)], "c": (1.5,), 4: np.arange(2)})
    assert json.loads(text) == {"a": None, "b": [None, 3], "c": [1.5], "4": [0, 1]}


def test_output_folder_into_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    """`--out .` cannot be renamed onto: the staged files move in, an earlier run's are replaced."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for name in ("fifo.json", "blend.json"):
        with output_folder(".", "--out", "simulate") as folder:
            (folder.work / name).write_text("{}")
        assert sorted(p.name for p in here.iterdir()) == sorted([name, MANIFEST])
    assert [p.name for p in tmp_path.iterdir()] == ["here"]


def test_output_folder_under_a_parent_that_takes_no_new_folder(tmp_path: Path, monkeypatch) -> None:
    """A writable --out whose parent takes no new folder (a mount point under a read-only parent)
    is staged inside itself."""
    import tempfile

    out = tmp_path / "mnt" / "out"
    out.mkdir(parents=True)
    real = tempfile.mkdtemp

    def read_only_parent(prefix: str = "", dir: Path | None = None) -> str:
        if dir is not None and Path(dir) == out.parent:
            raise PermissionError(13, "Permission denied")
        return real(prefix=prefix, dir=dir)

    monkeypatch.setattr(tempfile, "mkdtemp", read_only_parent)
    with output_folder(out, "--out", "simulate") as folder:
        assert folder.work.parent == out
        (folder.work / "fifo.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["fifo.json", MANIFEST]
