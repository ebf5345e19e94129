"""Write the benches' own figures into the README: one command, and a check that they still agree.

A figure in a Markdown file is marked with the bench result it comes from:

    <!--fig minsnap:vs_rotorpy.time_ratio:.0f-->155<!--/fig-->

`minsnap` names `bench/results/minsnap.json` (a full run's output, committed with the command that made
it; `ros_soak/ros_soak` names `bench/results/ros_soak/ros_soak.json`; a name that is not there is a path from
the repository's root, e.g. `learning/policyopt/results/rl_sps`), `vs_rotorpy.time_ratio` the dotted
path of the value in it (list items by index), and `.0f` the format (Python's format spec; a trailing `%`
multiplies by 100). The text between the marks is replaced.

    python scripts/readme_figures.py            # rewrite the marked figures in the READMEs (DOCUMENTS below)
    python scripts/readme_figures.py --check    # exit 1, naming each figure, if a file is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCUMENTS = ("README.md", "bench/README.md", "learning/README.md", "hardware/README.md")
MARK = re.compile(r"<!--fig (?P<bench>[\w\-/]+):(?P<path>[\w.\-\[\]]+):(?P<spec>[^>]*?)-->(?P<text>.*?)<!--/fig-->")


def result_path(bench: str) -> Path:
    """The JSON file a figure names: under bench/results/, else from the repository's root."""
    in_results = RESULTS / f"{bench}.json"
    return in_results if in_results.exists() else ROOT / f"{bench}.json"


def lookup(result: Any, path: str) -> Any:
    """The value at a dotted path (integers index lists)."""
    value = result
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def render(value: Any, spec: str) -> str:
    """`value` formatted by `spec` (a trailing % shows a fraction as a percentage without the sign)."""
    if spec.endswith("%"):
        body = spec[:-1]
        return format(float(value) * 100.0, body if body[-1:].isalpha() else body + "f")
    return format(value, spec)


def sync(text: str, results: dict[str, Any], source: str) -> tuple[str, list[str]]:
    """`text` with every marked figure rewritten; and the figures that changed, described."""
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        bench, path, spec, old = match["bench"], match["path"], match["spec"], match["text"]
        if bench not in results:
            results[bench] = json.loads(result_path(bench).read_text())
        new = render(lookup(results[bench], path), spec)
        if new != old:
            changed.append(f"{source}: {bench}:{path} is {new}, the text says {old}")
        return f"<!--fig {bench}:{path}:{spec}-->{new}<!--/fig-->"

    return MARK.sub(replace, text), changed


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or, with --check, compare) the marked figures; return the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a figure is out of date")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    stale: list[str] = []
    for name in DOCUMENTS:
        path = ROOT / name
        text = path.read_text(encoding="utf-8")
        new, changed = sync(text, results, name)
        stale.extend(changed)
        if changed and not args.check:
            path.write_text(new, encoding="utf-8")
    for line in stale:
        print(line, file=sys.stderr)
    if args.check and stale:
        print("readme_figures: out of date; run `python scripts/readme_figures.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
