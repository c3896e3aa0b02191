"""``python manage.py gw_worker --tasks myapp.tasks [gw worker options]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):  # type: ignore[misc]  # django ships no types
    help = (
        "Run a gw worker on this project's database; options Django does not know "
        "go to `gw worker` (e.g. --tasks myapp.tasks --concurrency 8)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_known = parser.parse_known_args

        # gw worker's options are gw's to check: keep what Django does not know.
        def parse_args(args: Any = None, namespace: Any = None) -> Any:
            known, rest = parse_known(args, namespace)
            known.worker_args = rest
            return known

        parser.parse_args = parse_args
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="the Django database alias")

    def handle(self, *args: str, **options: Any) -> None:
        from gw.cli import main

        from ... import database_url

        url = database_url(options["database"])
        try:
            main(["--database-url", url, "worker", *options.get("worker_args", []), *args])
        except SystemExit as ex:
            if ex.code not in (0, None):
                raise CommandError(f"gw worker exited with status {ex.code}") from None
