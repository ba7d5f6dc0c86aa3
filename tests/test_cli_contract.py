"""What the command line promises beyond single bad values (docs/cli.md): a bug exits 1 as an
internal error, Ctrl-C exits 130 at any moment, a verb that cannot import says why, children start
from any folder, optional parts missing give the install hint, and outputs say what made them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_inputs import make_inputs, run_in_process
from conftest import REPO_ROOT

import blendsim.cli
from blendsim.child import blendsim_command

VERBS = (
    "trace",
    "cost",
    "profile",
    "plan",
    "simulate",
    "sweep",
    "figures",
    "execute",
    "executor",
    "validate",
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A trace whose `simulate --policy all --engine both` runs for tens of seconds, so a Ctrl-C sent
    once its folder is staged lands while it simulates (the 300-request one can finish first)."""
    from blendsim.traces.io import write_trace
    from blendsim.traces.mixer import make_preset

    path = tmp_path_factory.mktemp("long") / "long.parquet"
    write_trace(make_preset("trace1", requests=20_000), path)
    return str(path)


def _script() -> str:
    script = shutil.which("blendsim", path=os.path.dirname(sys.executable))
    assert script, "the blendsim console script is not installed beside this interpreter"
    return script


def test_a_bug_is_an_internal_error_exit_1(monkeypatch, capsys) -> None:
    import blendsim.profiler.cost_cli as cost_cli

    def broken(_args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cost_cli, "run", broken)
    outcome = run_in_process(["cost", "--model", "llama-3-8b", "--prompt", "1", "--output", "1"], capsys)
    assert outcome.code == 1
    first, second = outcome.err.strip().splitlines()
    assert first == "blendsim: internal error: ZeroDivisionError: a bug"
    assert "report it on" in second and "not in your input" in second
    saved = Path(second.rsplit("the traceback is in ", 1)[1])
    assert "ZeroDivisionError" in saved.read_text() and "command: blendsim cost" in saved.read_text()
    saved.unlink()


def test_a_verb_that_does_not_import_is_reported_not_dropped(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "buggy_verb_module.py").write_text("1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    verbs = {
        **blendsim.cli.VERB_MODULES,
        "blendsim.no_such_part.cli": ("broken",),
        "no_such_pkg": ("extra",),
        "buggy_verb_module": ("buggy",),
    }
    monkeypatch.setattr(blendsim.cli, "VERB_MODULES", verbs)
    outcome = run_in_process(["buggy"], capsys)  # a bug in a verb's module is a bug, exit 1
    assert outcome.code == 1 and "internal error: ZeroDivisionError" in outcome.err
    Path(outcome.err.rsplit("the traceback is in ", 1)[1].strip()).unlink()
    outcome = run_in_process(["broken", "x"], capsys)
    assert outcome.code == 1 and "blendsim.no_such_part.cli does not import" in outcome.err
    assert "module 'blendsim.no_such_part'" in outcome.err and "Traceback" not in outcome.err
    outcome = run_in_process(["extra"], capsys)
    assert outcome.code == 2 and "needs no_such_pkg, which is not installed: pip install" in outcome.err
    with pytest.raises(SystemExit):
        blendsim.cli.main(["--help"])
    shown = capsys.readouterr().out
    assert "broken" in shown and "(unavailable: blendsim.no_such_part.cli does not import)" in shown


def test_missing_optional_parts_give_the_install_hint(inputs: dict[str, str], tmp_path: Path) -> None:
    """torch blocked in a child: execute --backend torch and validate say how to install it."""
    code = (
        "import sys; sys.modules['torch'] = None; from blendsim.cli import main; rc = ["
        f"main(['execute', {inputs['t']!r}, '--backend', 'torch', '--gpu', 'a100-80g', '--out', 'e']), "
        "main(['validate', '--backend', 'torch', '--out', 'v'])]; print(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.stdout.strip() == "[2, 2]", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and all("needs torch, which is not installed: pip install" in ln for ln in lines)
    assert list(tmp_path.iterdir()) == []


def _importing(proc: subprocess.Popen[str], cwd: Path) -> bool:
    """The CLI is inside ``main``, importing its verbs: numpy's C core is mapped (cli.py imports no
    numpy; the interpreter's own start, before ``main``, is Python's to handle)."""
    try:
        return "_multiarray_umath" in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def _simulating(proc: subprocess.Popen[str], cwd: Path) -> bool:
    """``simulate --out o`` has staged its folder: the simulation runs."""
    return any(cwd.glob(".o.partial-*"))


@pytest.mark.parametrize("moment", [_importing, _simulating], ids=["while importing", "while simulating"])
def test_ctrl_c_at_any_moment_is_interrupted_exit_130(moment, long_trace: str, tmp_path: Path) -> None:
    if not Path("/proc/self/maps").is_file():
        pytest.skip("needs /proc to tell when the CLI is importing")
    argv = [_script(), "simulate", long_trace, "--policy", "all", "--engine", "both", "--out", "o"]
    # a user's shell starts blendsim with Ctrl-C at its default; a test run may have left SIGINT
    # ignored in this process (children inherit an ignored signal, and Python then keeps it)
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not moment(proc, tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip() == "blendsim: interrupted", err
    assert list(tmp_path.iterdir()) == [], "an interrupted simulate left part of its --out"


def test_children_and_the_console_script_work_from_the_repository_root() -> None:
    """CI runs from a clean checkout's root, where the source folder blendsim/ shadows the
    installed package for `python -m`: every verb must still be there, in the console script and
    in the children blendsim starts (blendsim.child)."""
    for argv in ([_script(), "--help"], blendsim_command(sys.executable, "--help")):
        proc = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "unavailable" not in proc.stdout and all(f"    {v} " in proc.stdout for v in VERBS), (
            proc.stdout
        )


def test_outputs_record_what_made_them(inputs: dict[str, str], tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["simulate", inputs["t"], "--policy", "fifo", "--seed", "7", "--out", "o"]
    assert run_in_process(argv, capsys).code == 0
    for path in (tmp_path / "o" / "manifest.json", tmp_path / "o" / "fifo_overlap.json"):
        prov = json.loads(path.read_text())["provenance"]
        assert prov["command"] == "blendsim " + " ".join(argv) and prov["seed"] == 7
        assert prov["profile"] == "a100-80g" and prov["blendsim_version"]
    assert (
        run_in_process(
            ["trace", "make", "--preset", "trace2", "--requests", "300", "-o", "t.parquet"], capsys
        ).code
        == 0
    )
    from blendsim.traces.io import read_trace

    prov = read_trace(tmp_path / "t.parquet").metadata["provenance"]
    assert prov["command"].startswith("blendsim trace make") and prov["seed"] == 0
