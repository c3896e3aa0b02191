"""One worker process of ``gw.run_processes``.

``python -m gw.worker._child MODULE:FUNCTION BACKEND`` runs ``FUNCTION()``'s worker.
"""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> int:
    import anyio

    target, backend = argv
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, "")
    factory = importlib.import_module(module_name)
    for part in attr.split("."):
        factory = getattr(factory, part)
    worker = factory()  # type: ignore[operator]
    anyio.run(worker.run, backend=backend)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
