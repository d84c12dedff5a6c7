"""The web dashboard served by ``perdure serve`` at ``/dashboard``: instance list, instance
page (history table and timeline), and management actions. Server-rendered (Jinja2)."""

from perdure.dashboard.app import dashboard_routes, metrics_route

__all__ = ["dashboard_routes", "metrics_route"]
