"""See inside a running app: structured step logs, Prometheus metrics, OpenTelemetry spans.

Everything here is optional and cheap when unused: the worker calls a few hooks, each a
no-op (or a counter bump) unless logging, ``/metrics`` or OpenTelemetry is switched on.
"""
