"""Planning: the prefix tree, its transforms, output-length estimation, the dual scanner, the policies
and ``make_plan`` (trace -> Plan)."""
