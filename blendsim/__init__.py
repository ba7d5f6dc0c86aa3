"""blendsim: plan, simulate and validate offline (batch) LLM inference orders.

The parts live in top-level folders installed under this one import name:
``blendsim.traces``, ``blendsim.profiler``, ``blendsim.sim``, ``blendsim.executor``,
``blendsim.experiments``. This package itself holds only the command line.
"""

__version__ = "0.1.0"
