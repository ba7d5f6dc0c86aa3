"""Figures 13-15: the density x sharing grid with Azure, ShareGPT and WildChat in place of BurstGPT.

Each mix is <trace> + MMLU + OpenVid; WildChat's sharing axis starts at 0.20 because WildChat alone
already shares 0.19. One heatmap of blend's speedup over DFS per mix (fig13.png, fig14.png, fig15.png
and their CSVs). Paper (§7.6): Azure up to 1.31x, ShareGPT up to 1.17x, WildChat 1.07-1.16x; smaller
gains for the high-variance chat traces because sampled output-length estimates are poor there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from blendsim.experiments.common import FigureConfig
from blendsim.experiments.fig11 import grid_figure
from blendsim.experiments.figure_base import FigureOutput, figure_main

# (figure, trace, paper's (min, max, mean) over NanoFlow-DFS, §7.6; None where the paper gives none)
GRIDS = (
    ("fig13", "azure", (None, 1.31, None)),  # "up to 1.31x"
    ("fig14", "sharegpt", (None, 1.17, None)),  # "up to 1.17x"
    ("fig15", "wildchat", (1.07, 1.16, None)),
)


def run(out: Path, cfg: FigureConfig, cache: Path | None) -> FigureOutput:
    result = FigureOutput("fig13_15")
    for name, trace, paper in GRIDS:
        sharings = cfg.wildchat_sharings if trace == "wildchat" else cfg.appendix_sharings
        part = grid_figure(
            name,
            f"Figure {name[3:]}",
            (trace, "mmlu", "openvid"),
            cfg.appendix_densities,
            sharings,
            out,
            cfg,
            paper,
        )
        result.paths += part.paths
        result.headline += part.headline
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return figure_main("fig13_15", run, argv)


if __name__ == "__main__":
    sys.exit(main())
