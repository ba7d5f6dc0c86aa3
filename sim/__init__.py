"""Planning (prefix tree, output-length estimation, policies) and the discrete-event simulator."""
