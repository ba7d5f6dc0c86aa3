"""`blendsim trace make | stats` end to end, and every bad input: exit 2, one line, no output file."""

from __future__ import annotations

import json

import pytest

from blendsim.cli import main


def test_make_preset_then_stats_json(tmp_path, capsys) -> None:
    out = tmp_path / "t1.parquet"
    assert main(["trace", "make", "--preset", "trace1", "-o", str(out), "-q"]) == 0
    assert "density" in capsys.readouterr().out
    assert main(["trace", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"]["requests"] == 40_000
    assert stats["total"]["density"] == pytest.approx(1.4, rel=0.03)
    assert stats["total"]["sharing"] == pytest.approx(0.35, abs=0.02)
    assert set(stats["sources"]) == {"burstgpt", "mmlu", "openvid"}
    assert main(["trace", "stats", str(out)]) == 0
    table = capsys.readouterr().out
    assert "total" in table and "openvid" in table


def test_make_mix_interleaved_with_progress(tmp_path, capsys) -> None:
    out = tmp_path / "m.parquet"
    assert (
        main(
            [
                "trace",
                "make",
                "--mix",
                "azure,mmlu,openvid",
                "--density",
                "1.0",
                "--sharing",
                "0.3",
                "--requests",
                "5000",
                "--seed",
                "4",
                "--arrival",
                "interleaved",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "solving counts" in captured.err and out.exists()


BAD = [
    (["--mix", "burstgpt,nope", "--density", "1", "--sharing", "0.1"], "unknown source 'nope'"),
    (["--preset", "trace1", "--model", "gpt-9"], "unknown model 'gpt-9'"),
    (["--preset", "trace1", "--gpu", "tpu-v9"], "unknown GPU 'tpu-v9'"),
    (["--preset", "trace1", "--requests", "0"], "positive"),
    (["--preset", "trace1", "--requests", "-10"], "positive"),
    (["--mix", "burstgpt,mmlu,openvid", "--density", "80", "--sharing", "0.35"], "feasible density"),
    (["--mix", "burstgpt,openvid", "--density", "1", "--sharing", "0.6"], "feasible sharing"),
    (["--mix", "burstgpt,mmlu"], "needs --density, --sharing"),
    (["--preset", "trace1", "--density", "2"], "drop --density"),
    (
        [
            "--mix",
            "burstgpt,openvid",
            "--density",
            "1",
            "--sharing",
            "0.01",
            "--lengths-from",
            "/no/such.csv",
        ],
        "does not exist",
    ),
]


@pytest.mark.parametrize(("args", "match"), BAD)
def test_bad_make_input(tmp_path, capsys, args: list[str], match: str) -> None:
    out = tmp_path / "x.parquet"
    assert main(["trace", "make", *args, "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left behind either


def test_bad_lengths_csv_via_cli(tmp_path, capsys) -> None:
    csv = tmp_path / "l.csv"
    csv.write_text("input_tokens,output_tokens\n100,20\n100,x\n")
    out = tmp_path / "x.parquet"
    assert (
        main(
            [
                "trace",
                "make",
                "--mix",
                "burstgpt,openvid",
                "--density",
                "1",
                "--sharing",
                "0.01",
                "--lengths-from",
                str(csv),
                "-o",
                str(out),
                "-q",
            ]
        )
        == 2
    )
    assert "row 3 column 'output_tokens'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "does not exist"), (b"PAR1garbage", "not a readable Parquet"), ("dir", "directory")],
)
def test_bad_stats_input(tmp_path, capsys, content, match: str) -> None:
    path = tmp_path / "t.parquet"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert main(["trace", "stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_help_lists_sources_and_presets(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["trace", "make", "--help"])
    text = capsys.readouterr().out
    for word in ("burstgpt", "wildchat", "openvid", "trace4", "--lengths-from", "--arrival"):
        assert word in text
