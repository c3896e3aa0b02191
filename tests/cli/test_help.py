"""``gw --help`` and every command's ``--help``: they list their options, each with help text."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import REPO, gw_command, gw_env

GLOBAL_OPTIONS = ["--database-url", "--schema", "--backend", "--json", "--verbose"]

COMMANDS: dict[str, tuple[str, list[str]]] = {
    "migrate": ("Install or upgrade the Graphile Worker schema", []),
    "add": (
        "Schedule a job for a task.",
        "IDENTIFIER --payload --queue --run-at --max-attempts --priority --job-key "
        "--job-key-mode --flag".split(),
    ),
    "list": (
        "List jobs, newest first.",
        ["--state", "--identifier", "--queue", "--search", "--limit", "--offset"],
    ),
    "show": ("Show one job in full, payload included.", ["JOB_ID"]),
    "complete": ("Mark jobs as done", ["JOB_IDS"]),
    "fail": ("Fail jobs permanently", ["JOB_IDS", "--reason"]),
    "reschedule": (
        "Change when and how jobs run",
        ["JOB_IDS", "--run-at", "--priority", "--attempts", "--max-attempts"],
    ),
    "cancel": ("Cancel jobs, waiting or running on a gw worker", ["JOB_IDS", "--reason"]),
    "remove": ("Cancel the job with this job key.", ["JOB_KEY"]),
    "cleanup": ("Run maintenance tasks on the schema.", ["--task"]),
    "force-unlock": ("Release every job and queue locked by these worker ids.", ["WORKER_IDS"]),
    "stats": ("Count jobs by state.", []),
    "queues": ("List named queues", []),
    "workers": ("List workers holding locks", ["--active-within"]),
    "limits": ("List the fleet-wide rate and concurrency limits", []),
    "check": ("Connect to PostgreSQL", ["--quiet"]),
    "history": (
        "List finished attempts, newest first",
        ["--task", "--queue", "--outcome", "--job", "--since", "--limit", "--before-id"],
    ),
    "result": ("Show how a job ended", ["JOB_ID", "--wait"]),
    "sweep-stale-workers": (
        "Recover jobs held by workers that stopped heartbeating",
        ["--dry-run", "--sweep-threshold", "--recovery-delay"],
    ),
    "worker": (
        "Run a worker for the tasks in Python modules",
        "--tasks --concurrency --poll-interval --crontab --once --local-queue-size --recovery "
        "--grace-period --max-pg-conn --admin --listen --admin-auth --queue-limit --history "
        "--history-payloads --tracing".split(),
    ),
    "admin": (
        "Serve the admin UI and JSON API",
        ["--listen", "--auth", "--username", "--header-name", "--read-only"],
    ),
}


@pytest.fixture(scope="module")
def helps() -> dict[str, tuple[int, str, str]]:
    """Every help page, produced by concurrent subprocesses (no database needed)."""
    procs = {
        name: subprocess.Popen(
            gw_command(*([name] if name else []), "--help"),
            cwd=REPO,
            env=gw_env(COLUMNS="100"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ["", *COMMANDS]
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = (proc.returncode, stdout, stderr)
    return out


def _described(text: str, label: str) -> bool:
    """Whether the help line naming ``label`` also carries a description."""
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c for c in re.split(r"\s{2,}", line.strip("│ ").lstrip("* ")) if c.strip("│ ")]
        # The row naming the option starts with it (a description may mention it).
        if cells and cells[0].split()[0] == label:
            return len(cells) >= 2
    return False


def test_top_level_help_lists_every_command_and_global_option(
    helps: dict[str, tuple[int, str, str]],
) -> None:
    code, text, err = helps[""]
    assert (code, err) == (0, "")
    assert text.startswith("Usage: gw COMMAND")
    assert "PostgreSQL job queue for trio and asyncio" in text
    for title in ("Jobs", "Inspect", "Maintenance", "Run", "Global options"):
        assert f"─ {title} ─" in text
    for command, (summary, _) in COMMANDS.items():
        assert _described(text, command), f"{command} is missing from gw --help"
        assert summary.split()[0] in text
    for option in GLOBAL_OPTIONS:
        assert _described(text, option), option
    assert "[env var: DATABASE_URL]" in text


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_help_lists_its_options_with_descriptions(
    helps: dict[str, tuple[int, str, str]], command: str
) -> None:
    code, text, err = helps[command]
    summary, options = COMMANDS[command]
    assert (code, err) == (0, "")
    assert text.startswith(f"Usage: gw {command}")
    assert summary in " ".join(text.split())
    for option in [*options, *GLOBAL_OPTIONS]:
        assert _described(text, option), f"gw {command} --help: {option} has no description"
    # Flags read as plain switches, not "--x --no-x [default: False]".
    assert "--no-" not in text
    assert "[default: False]" not in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("command", "beyond_the_summary"),
    [
        ("cleanup", "restart them afterwards if it removed identifiers they use"),
        ("cancel", "A job held by a Node or Rust worker is left alone."),
        ("result", "3 failed for good, cancelled or skipped; 4 not finished yet"),
    ],
)
def test_command_help_shows_the_whole_description(
    helps: dict[str, tuple[int, str, str]], command: str, beyond_the_summary: str
) -> None:
    """gw --help lists one-line summaries; gw CMD --help shows all of it."""
    _, text, _ = helps[command]
    assert beyond_the_summary in " ".join(text.split())
    assert beyond_the_summary not in " ".join(helps[""][1].split())


def test_durations_show_their_defaults_in_duration_syntax(
    helps: dict[str, tuple[int, str, str]],
) -> None:
    sweep = " ".join(helps["sweep-stale-workers"][1].split())
    assert "[default: 5m]" in sweep
    assert "[default: 30s]" in sweep
    worker = " ".join(helps["worker"][1].split())
    assert "[default: 1s]" in worker


def test_lazy_command_summaries_match_their_docstrings() -> None:
    """Commands load their module only when run; ``gw --help`` shows the summaries
    registered for them, which must be the first docstring line of each command."""
    import importlib

    from gw.cli import COMMANDS as REGISTERED

    assert set(REGISTERED) == set(COMMANDS)
    for name, (path, _group, summary) in REGISTERED.items():
        module, attr = path.split(":")
        doc = getattr(importlib.import_module(module), attr).__doc__
        assert doc is not None, name
        assert doc.strip().splitlines()[0] == summary, name


def test_gw_worker_does_not_load_other_commands_or_rich() -> None:
    code = (
        "import sys, gw.cli; from gw.cli import app; app['worker']; "
        "print(sorted(m for m in ('rich', 'gw.admin', 'gw.cli.jobs', 'gw.cli.admin', "
        "'gw.cli.status', 'gw.cli.maintenance') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"
