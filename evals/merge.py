"""Combine the results of sharded runs (`evals.run --shard i/k`) into one run directory.

    python -m evals.merge runs/beam runs/beam-0 runs/beam-1 runs/beam-2 runs/beam-3

Reads every <shard>/results.jsonl, keeps each problem once, refuses to mix strategies or
budgets, and writes <output>/results.jsonl with summary.md/summary.json as one run would.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evals.run import markdown_table, read_results, report_tables, summarize


def merge(shard_dirs: list[Path], out: Path) -> dict:
    rows: dict[str, dict] = {}
    for d in shard_dirs:
        if not (d / "results.jsonl").is_file():
            raise FileNotFoundError(f"{d}: no results.jsonl (is it an evals.run output directory?)")
        for row in read_results(d / "results.jsonl"):
            rows.setdefault(row["id"], row)
    kinds = {(r["strategy"], r["n"]) for r in rows.values()}
    if len(kinds) > 1:
        raise ValueError(f"the shards ran different strategies or budgets: {sorted(kinds)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    summary = summarize(list(rows.values()))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(report_tables([summary]) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="merged run directory")
    parser.add_argument("shards", nargs="+", help="the shards' --output directories")
    args = parser.parse_args(argv)
    try:
        summary = merge([Path(d) for d in args.shards], Path(args.output))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(markdown_table([summary]))


if __name__ == "__main__":
    main()
