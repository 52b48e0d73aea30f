"""Panel ids that outlast edits: each panel's is the one ``grafana/panel_ids.json`` gives it.

Ids are keyed by title in each dashboard, not by position, so a link to a panel (``viewPanel=``,
``editPanel=``, a runbook's) still opens it after panels are added, moved or removed around it.
A panel without an id, or an id naming no panel (a renamed panel: carry its id over to the new
title), stops the generator; the id of a removed panel goes to ``retired`` and is never given
again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

IDS = Path(__file__).resolve().parent.parent / "panel_ids.json"


@dataclass(frozen=True)
class PanelIds:
    """One dashboard's panel ids: by title, and those of removed panels, never given again."""

    panels: dict[str, int]
    retired: tuple[int, ...] = ()

    def next_free(self) -> int:
        """The id to give a new panel: above every id given so far."""
        return max([0, *self.panels.values(), *self.retired]) + 1


def load_ids(path: Path = IDS) -> dict[str, PanelIds]:
    """Each dashboard's panel ids, by dashboard uid."""
    table = json.loads(path.read_text())
    return {uid: PanelIds(entry["panels"], tuple(entry["retired"])) for uid, entry in table.items()}


def check_ids(uid: str, titles: list[str], ids: PanelIds) -> None:
    """Refuse a title used twice, a panel without an id, an id naming no panel or given twice."""
    where = f"{IDS.name}, dashboard {uid}"
    for title in titles:
        if titles.count(title) > 1:
            raise ValueError(f"{where}: two panels have the title {title!r}, which keys its id")
        if title not in ids.panels:
            raise ValueError(
                f"{where}: panel {title!r} has no id; give it {ids.next_free()} (the next free one)"
            )
    for title in ids.panels.keys() - set(titles):
        raise ValueError(
            f"{where}: {title!r} names no panel; a renamed panel keeps its id under its new "
            "title, a removed one's id goes to retired"
        )
    given = [*ids.panels.values(), *ids.retired]
    for panel_id in given:
        if not isinstance(panel_id, int) or isinstance(panel_id, bool) or panel_id < 1:
            raise ValueError(f"{where}: id {panel_id!r} is not a positive whole number")
        if given.count(panel_id) > 1:
            raise ValueError(f"{where}: id {panel_id} is given twice")
