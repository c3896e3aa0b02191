"""Runnable gw examples (importable from the repository root: ``examples.tasks``)."""

from __future__ import annotations
