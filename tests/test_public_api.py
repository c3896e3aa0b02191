"""The public surface: what `import gw` exports and what it does not load."""

from __future__ import annotations

import subprocess
import sys

import gw


def test_all_names_exist_once() -> None:
    assert isinstance(gw.__all__, tuple)
    missing = [name for name in gw.__all__ if not hasattr(gw, name)]
    assert missing == []
    assert len(set(gw.__all__)) == len(gw.__all__)


def test_public_classes_are_reachable_from_gw() -> None:
    for name in ("Worker", "WorkerUtils", "JobSpec", "Job", "task", "batch_task", "GwError"):
        assert name in gw.__all__


def test_import_gw_loads_no_backend_or_web_stack() -> None:
    # `import gw` must stay cheap: trio, Quart and hypercorn load only when used.
    code = (
        "import sys, gw, gw.sync, gw.admin; "
        "print(sorted(m for m in ('trio', 'quart', 'quart_trio', 'hypercorn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_every_error_is_a_gw_error() -> None:
    errors = [getattr(gw, n) for n in gw.__all__ if n.endswith("Error") or n in ("TaskNotFound",)]
    assert errors
    assert all(issubclass(e, gw.GwError) for e in errors)
