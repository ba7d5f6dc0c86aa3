"""The main job installs without torch or vLLM (`pip install .`): every verb must still register,
and the torch-free path (trace, plan, simulate) must run. Verb modules import heavy dependencies
only when their verb runs."""

from __future__ import annotations

import subprocess
import sys

BLOCK = "import sys; sys.modules['torch'] = None; sys.modules['vllm'] = None; "


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=300)


def test_every_verb_registers_without_torch() -> None:
    proc = _run(
        "from blendsim.cli import build_parser; p = build_parser(); "
        "print(sorted(p._subparsers._group_actions[0].choices))"
    )
    assert proc.returncode == 0, proc.stderr
    for verb in ("trace", "cost", "profile", "plan", "simulate", "sweep", "figures", "execute", "validate"):
        assert f"'{verb}'" in proc.stdout


def test_simulate_runs_without_torch(tmp_path) -> None:
    trace = tmp_path / "t.parquet"
    code = (
        "from blendsim.cli import main; "
        f"assert main(['trace', 'make', '--preset', 'trace3', '--requests', '2000', '-o', r'{trace}']) == 0; "
        f"assert main(['simulate', r'{trace}', '--policy', 'blend']) == 0"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert "blend" in proc.stdout


def test_profile_without_torch_says_how_to_install() -> None:
    proc = _run(
        "from blendsim.cli import main; "
        "raise SystemExit(main(['profile', '--device', 'cpu', '--model', 'smollm2-135m', '-o', 'x.json']))"
    )
    assert proc.returncode == 2
    assert "pip install" in proc.stderr and "Traceback" not in proc.stderr
