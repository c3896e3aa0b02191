"""Start-up benchmark: what a CLI call, a cron-triggered ``gw worker --once`` or a
serverless job pays before and after doing any work.

Measured, each as the median of ``--repeat`` fresh processes (wall time from
spawn to exit, so interpreter start-up is included):

  python -c pass          the interpreter alone (the floor of every row)
  import psycopg          the database driver alone (the floor of any gw process)
  import gw               the package (public names load on first use)
  worker setup            ``gw.Worker`` + ``@gw.task`` imported, no database
  gw --help               the CLI's help
  gw worker --once        spawn -> exit on an empty queue (connect, check the
                          schema, register the task, one fetch, shut down)

Then the top offenders of ``python -X importtime`` for the worker path, and
for comparison, when ``--node`` points at an installed graphile-worker,
``graphile-worker --once`` on the same database.

    python bench/startup.py [--database-url URL] [--repeat 10] [--node DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _db import database  # bench/ (this script's folder) is on sys.path

SCHEMA = "graphile_worker"
TASKS = """
import gw

@gw.task("bench_startup_noop")
async def noop(payload: object) -> None:
    return None
"""


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU (user + system) is steadier on a busy VM."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def median_ms(argv: list[str], env: dict[str, str], cwd: str, repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds over ``repeat`` runs (after one warm-up)."""
    timed(argv, env, cwd)  # warm the page cache
    runs = [timed(argv, env, cwd) for _ in range(repeat)]
    return (
        statistics.median(r[0] for r in runs) * 1000,
        statistics.median(r[1] for r in runs) * 1000,
    )


def importtime(code: str, env: dict[str, str], cwd: str, top: int) -> list[tuple[int, str]]:
    """(self-time us, module) of the slowest imports of ``python -c code``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, module = line.removeprefix("import time:").split("|")
        rows.append((int(self_us), module.strip()))
    rows.sort(reverse=True)
    return rows[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--top", type=int, default=15, help="importtime rows to print")
    parser.add_argument(
        "--node", help="a directory with node_modules/graphile-worker (and node) to compare"
    )
    args = parser.parse_args()

    with database(args.database_url) as url:
        from gw.db.migrate import migrate_sync

        migrate_sync(url, SCHEMA)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "bench_startup_tasks.py").write_text(TASKS)
            path = os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH")) if p)
            env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": path}
            # As users run: bytecode cached after the warm-up run (some CI
            # machines set this, which makes every run compile gw again).
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            py = sys.executable
            gw_cli = [py, "-m", "gw"]
            rows = [
                ("python -c pass", [py, "-c", "pass"]),
                ("import psycopg", [py, "-c", "import psycopg"]),
                ("import gw", [py, "-c", "import gw"]),
                (
                    "worker setup (no database)",
                    [py, "-c", "import bench_startup_tasks, gw; gw.Worker"],
                ),
                ("gw --help", [*gw_cli, "--help"]),
            ]
            once = ["worker", "--tasks", "bench_startup_tasks", "--once"]
            for backend in ("trio", "asyncio"):
                rows.append(
                    (f"gw worker --once ({backend})", [*gw_cli, "--backend", backend, *once])
                )
            print(
                f"start-up, spawn -> exit, median of {args.repeat} runs, {os.cpu_count()} CPUs:"
                " wall ms, CPU ms (user + system)"
            )
            results = {}
            for label, argv in rows:
                wall, cpu = median_ms(argv, env, tmp, args.repeat)
                results[label] = (wall, cpu)
                print(f"  {label:34} {wall:7.1f} {cpu:7.1f}", flush=True)
            if args.node:
                node_dir = Path(args.node).resolve()
                node_bin = node_dir / "node_modules" / ".bin"
                node_env = {**env, "PATH": f"{node_bin}:{env.get('PATH', '')}"}
                Path(tmp, "tasks").mkdir()
                Path(tmp, "tasks", "bench_startup_noop.js").write_text(
                    "module.exports = async () => {};\n"
                )
                node = median_ms(
                    ["graphile-worker", "--connection", url, "--once"], node_env, tmp, args.repeat
                )
                print(f"  {'node graphile-worker --once':34} {node[0]:7.1f} {node[1]:7.1f}")
                for backend in ("trio", "asyncio"):
                    ours = results[f"gw worker --once ({backend})"]
                    print(
                        f"  gw worker --once ({backend}) / node: wall {ours[0] / node[0]:.2f}x,"
                        f" CPU {ours[1] / node[1]:.2f}x"
                    )
            base = results["python -c pass"]
            floor = results["import psycopg"]
            own = results["import gw"]
            print(
                f"  above the interpreter: import psycopg {floor[0] - base[0]:.1f} ms wall"
                f" ({floor[1] - base[1]:.1f} CPU), import gw {own[0] - base[0]:.1f} ms wall"
                f" ({own[1] - base[1]:.1f} CPU)"
            )
            print(f"\nslowest imports (self time) of the worker path, top {args.top}:")
            code = "import bench_startup_tasks, gw, gw.cli, gw.worker._worker"
            for self_us, module in importtime(code, env, tmp, args.top):
                print(f"  {self_us / 1000:7.1f} ms  {module}")


if __name__ == "__main__":
    main()
