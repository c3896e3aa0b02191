"""The Django app config for gw (it only contributes the gw_worker command)."""

from __future__ import annotations

from django.apps import AppConfig


class GwConfig(AppConfig):  # type: ignore[misc]  # django ships no types
    name = "gw.contrib.django"
    label = "gw"
    verbose_name = "gw job queue"
