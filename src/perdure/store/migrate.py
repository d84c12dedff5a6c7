"""Numbered SQL migrations shipped as package files (``NNNN_name.sql``)."""

from __future__ import annotations

from importlib import resources


def load_migrations(package: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every ``NNNN_*.sql`` in ``package``, in order."""
    found = []
    for entry in resources.files(package).iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append((int(entry.name[:4]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
