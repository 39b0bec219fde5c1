"""The benchmark phases, one module each; each ``run(ctx, systems)`` returns a JSON-able dict.

Every phase result has ``rows`` (system name to figures) and ``errors`` (system name to what
went wrong), plus the phase's parameters, so the report can say exactly what was measured.
"""
