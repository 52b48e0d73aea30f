"""Write the shipped Grafana dashboards (``grafana/dashboards/*.json``) from their tables.

    python grafana/generate.py           # rewrite the JSON files
    python grafana/generate.py --check   # exit 1 when a file differs from what this generates

The tables are in ``grafana/generator/tables/``, one module per dashboard; ``grafana/generator/``
says how they become the files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Run as a script: this folder, and so the generator package beside it, is on sys.path.
from generator import DASHBOARDS, IDS, Dashboard, PanelIds, build, load_ids

OUT = Path(__file__).resolve().parent / "dashboards"


def render(dashboard: Dashboard, ids: PanelIds) -> str:
    """The file text of one dashboard."""
    return json.dumps(build(dashboard, ids), indent=2, sort_keys=False) + "\n"


def files() -> dict[Path, str]:
    """Every dashboard file this generates, by path."""
    ids = load_ids()
    unknown = ids.keys() - {dashboard.uid for dashboard in DASHBOARDS}
    if unknown:
        raise ValueError(f"{IDS.name}: no dashboard has the uid {sorted(unknown)[0]!r}")
    return {
        OUT / f"{dashboard.uid}.json": render(dashboard, ids.get(dashboard.uid, PanelIds({})))
        for dashboard in DASHBOARDS
    }


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` report the ones that are out of date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    try:
        generated = files()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    stale = [
        path for path, text in generated.items() if not path.exists() or path.read_text() != text
    ]
    if args.check:
        for path in stale:
            print(f"out of date: {path} (run python grafana/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for path in stale:
        path.write_text(generated[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
