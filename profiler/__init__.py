"""Cost model and profiler: model and hardware specs, request- and step-level cost, profiles."""

from blendsim.compiled import check_fresh

check_fresh(__file__)
