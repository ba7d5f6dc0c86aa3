"""Cost model and profiler: model and hardware specs, request- and step-level cost, profiles."""
