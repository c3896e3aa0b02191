"""Tasks for the job history CLI tests (``gw worker --tasks tests.cli.history_tasks``)."""

from __future__ import annotations

from typing import Any

import msgspec

import gw


class Question(msgspec.Struct):
    text: str


@gw.task
async def answer(question: Question) -> dict[str, Any]:
    """Returns something for the history to keep (brackets: not rich markup)."""
    return {"answer": 42, "question": question.text, "tags": ["[bold]x[/bold]"]}


@gw.task
async def broken(payload: dict[str, Any]) -> None:
    """Fails every attempt."""
    raise RuntimeError(f"broken: {payload.get('why', 'no reason')}")
