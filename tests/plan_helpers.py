"""Random and hand-made traces shared by the planner tests (tree, scanner, policies)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from blendsim.profiler.gpus import get_gpu
from blendsim.profiler.models import get_model
from blendsim.sim.planning.tree import PrefixTree
from blendsim.traces.request import Request
from blendsim.traces.trace import Trace

MODEL = get_model("llama-3-8b")
GPU = get_gpu("a100-80g")


@st.composite
def random_traces(draw: st.DrawFn, max_requests: int = 30) -> Trace:
    """Requests as random paths in a small trie (so prefixes are shared, and some prompts end where
    others continue); a segment's id and length are fixed by its path (the segment invariant)."""
    n = draw(st.integers(1, max_requests))
    ids: dict[tuple[int, ...], int] = {}
    lens: dict[tuple[int, ...], int] = {}
    reqs = []
    for i in range(n):
        depth = draw(st.integers(1, 4))
        path = tuple(draw(st.integers(0, 2)) for _ in range(depth))
        segs, seg_lens = [], []
        for k in range(1, depth + 1):
            key = path[:k]
            if key not in ids:
                ids[key] = len(ids) + 7
                lens[key] = draw(st.integers(1, 60))
            segs.append(ids[key])
            seg_lens.append(lens[key])
        out = draw(st.sampled_from([1, 2, 5, 30, 300, 3000, 20000]))
        reqs.append(Request(i, f"s{path[0]}", tuple(segs), tuple(seg_lens), out))
    return Trace.from_requests(reqs)


def outlier_trace(n_short: int = 20, prefix: int = 50) -> Trace:
    """A compute-heavy group under a shared ``prefix`` holding one long-output outlier, plus videos."""
    reqs = [Request(i, "api", (1, 100 + i), (prefix, 30), 2) for i in range(n_short)]
    reqs.append(Request(n_short, "api", (1, 100 + n_short), (prefix, 30), 30000))
    for j in range(3):
        reqs.append(Request(n_short + 1 + j, "video", (2, 500 + j), (10, 100), 16000))
    return Trace.from_requests(reqs)


def leaves_under(tree: PrefixTree, v: int) -> np.ndarray:
    """Request positions below node ``v`` by walking every leaf's parent chain (brute force)."""
    out = []
    for i in range(tree.n_leaves):
        u = tree.leaf_offset + i
        while u != -1:
            if u == v:
                out.append(i)
                break
            u = int(tree.parent[u])
    return np.asarray(out, dtype=np.int64)
