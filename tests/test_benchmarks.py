"""The benchmark harness runs and writes well-formed output (a smoke test: no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.__main__ import main


def test_quick_run_writes_json_and_markdown(tmp_path: Path, capsys: object) -> None:
    """--quick runs the selected groups and writes results.json and results.md with every case."""
    assert (
        main(
            [
                "--quick",
                "--out",
                str(tmp_path),
                "--only",
                "floor",
                "layer:proxy",
                "layer:https",
                "routes",
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["meta"]["quick"] is True
    groups = {r["group"] for r in doc["results"]}
    assert groups == {"floor", "layer:proxy", "layer:https", "routes"}
    for result in doc["results"]:
        assert result["median_ns"] > 0
        assert set(result) == {
            "group",
            "case",
            "median_ns",
            "iqr_ns",
            "ratio",
            "overhead_ns",
            "note",
        }
    baselines = [r for r in doc["results"] if r["overhead_ns"] == 0]
    assert len(baselines) == len(groups)
    table = (tmp_path / "results.md").read_text()
    assert table.count("| case | median ns/req | IQR ns | overhead ns | ratio |") == 4
    assert "| ProxyHeaders x-forwarded (trusted peer) |" in table
