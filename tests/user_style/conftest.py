from __future__ import annotations

pytest_plugins = ["gw.testing.pytest"]
