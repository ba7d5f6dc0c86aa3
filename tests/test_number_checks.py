"""The number tests every config and importer shares (blendsim/options.py): a bool is never a number,
NaN never passes, and finiteness is a separate question."""

from __future__ import annotations

import math

import pytest

from blendsim.errors import UserError
from blendsim.options import is_finite_number, is_integer, is_number
from blendsim.profiler.gpus import GPUS

CASES = [  # value, is_integer, is_number, is_finite_number
    (3, True, True, True),
    (10**400, True, True, False),  # an int too large for a float is not finite either
    (2.5, False, True, True),
    (True, False, False, False),
    (False, False, False, False),
    (math.inf, False, True, False),
    (math.nan, False, False, False),
    ("3", False, False, False),
    (None, False, False, False),
]


@pytest.mark.parametrize(("value", "integer", "number", "finite"), CASES)
def test_each_value_is_classified(value: object, integer: bool, number: bool, finite: bool) -> None:
    assert (is_integer(value), is_number(value), is_finite_number(value)) == (integer, number, finite)


def test_a_bool_tensor_parallelism_is_refused() -> None:
    with pytest.raises(UserError, match="tensor parallelism"):
        GPUS["a100-80g"].with_tp(True)
