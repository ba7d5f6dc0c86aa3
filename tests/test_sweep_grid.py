"""Sweep grid specs: parsing, validation, cell keys and the identity that guards resumption."""

from __future__ import annotations

import pytest

from blendsim.errors import UserError
from blendsim.experiments.grid import Cell, SweepSpec, parse_values
from blendsim.options import parse_choice_list


def test_range_is_inclusive_and_free_of_float_noise() -> None:
    values = parse_values("0.8:1.4:0.05", "density")
    assert len(values) == 13
    assert values[0] == 0.8 and values[-1] == 1.4
    assert values[3] == 0.95  # 0.8 + 3 * 0.05 is 0.9500000000000001 before rounding


def test_sharing_grid_of_the_paper() -> None:
    assert parse_values("0.05:0.45:0.10", "sharing ratio") == (0.05, 0.15, 0.25, 0.35, 0.45)


def test_list_is_sorted_and_deduplicated() -> None:
    assert parse_values("1.4, 0.9,1.4", "density") == (0.9, 1.4)


@pytest.mark.parametrize(
    "spec",
    ["", "a:b:c", "0.8:1.4", "1.4:0.8:0.1", "0.8:1.4:0", "0.8:1.4:-0.1", "x,1", "nan", "0.8:1.4:0.000001"],
)
def test_bad_specs_are_one_clear_user_error(spec: str) -> None:
    with pytest.raises(UserError) as err:
        parse_values(spec, "density")
    assert "\n" not in str(err.value)
    assert "density" in str(err.value)


def test_names_and_engines() -> None:
    assert parse_choice_list("all", ("fifo", "blend"), "policy") == ("fifo", "blend")
    assert parse_choice_list("blend,dfs", ("dfs", "blend"), "policy") == ("blend", "dfs")
    with pytest.raises(UserError, match="given twice"):
        parse_choice_list("blend,dfs,blend", ("dfs", "blend"), "policy")
    with pytest.raises(UserError, match="unknown policy 'lifo'"):
        parse_choice_list("lifo", ("dfs", "blend"), "policy")
    with pytest.raises(UserError, match="empty policy name"):
        parse_choice_list("dfs,", ("dfs", "blend"), "policy")
    assert parse_choice_list("both", ("overlap", "serial"), "engine", all_words=("both", "all")) == (
        "overlap",
        "serial",
    )
    with pytest.raises(UserError, match="unknown engine"):
        parse_choice_list("pipelined", ("overlap", "serial"), "engine")


def test_spec_validation() -> None:
    with pytest.raises(UserError, match="sharing ratio 1.2"):
        SweepSpec(densities=(1.0,), sharings=(1.2,))
    with pytest.raises(UserError, match="not positive"):
        SweepSpec(densities=(0.0,), sharings=(0.3,))
    with pytest.raises(UserError, match="requests must be >= 1"):
        SweepSpec(densities=(1.0,), sharings=(0.3,), requests=0)


def test_identity_ignores_the_grid_but_not_what_decides_results() -> None:
    a = SweepSpec(densities=(0.9, 1.0), sharings=(0.35,))
    b = SweepSpec(densities=(0.9, 1.0, 1.1), sharings=(0.35, 0.05))
    assert a.digest() == b.digest()  # a wider grid may reuse the cells
    assert SweepSpec(densities=(0.9,), sharings=(0.35,), requests=999).digest() != a.digest()
    assert SweepSpec(densities=(0.9,), sharings=(0.35,), engines=("serial",)).digest() != a.digest()
    assert SweepSpec(densities=(0.9,), sharings=(0.35,), seed=1).digest() != a.digest()
    noisy = SweepSpec(densities=(0.9,), sharings=(0.35,), estimation_options=(("length_noise", 0.5),))
    assert noisy.digest() != a.digest() and noisy.estimation.length_noise == 0.5
    assert "estimation_options" not in a.identity()  # the paper's estimation keeps earlier sweeps' digests


def test_sweep_cli_takes_the_estimation_options() -> None:
    from blendsim.cli import build_parser
    from blendsim.experiments.sweep_cli import spec_from_args

    args = build_parser().parse_args(["sweep", "--densities", "0.9", "--video-lengths", "sampled"])
    spec = spec_from_args(args)
    assert spec.estimation_options == (("video_lengths", "sampled"),)
    assert "video_lengths=sampled" in spec.describe()


def test_cells_are_sharing_major_with_stable_keys() -> None:
    spec = SweepSpec(densities=(0.9, 1.3), sharings=(0.05, 0.35))
    assert [c.key for c in spec.cells] == [
        "d0.9000_s0.0500",
        "d1.3000_s0.0500",
        "d0.9000_s0.3500",
        "d1.3000_s0.3500",
    ]
    assert Cell(1.05, 0.5).key == "d1.0500_s0.5000"
