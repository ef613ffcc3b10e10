"""tools/compare_robustness.py: two hand-made robustness.json summaries side by side, figures checked by hand."""
import json

import pytest

from perception.cli.compare_robustness import main, run


def _summary(clean, cells):
    """A robustness.json reduced to what its check asks (check_summary) and the comparison reads: corruption ->
    [(severity, NDS)], RA and RR by hand from ``clean``."""
    rows = [{"name": name, "revision": 1, "rr": sum(nds / clean for _, nds in values) / len(values),
             "cells": [{"severity": s, "level": s, "nd_score": nds, "ra": nds / clean} for s, nds in values]}
            for name, values in cells.items()]
    worst_name, worst = min(((row["name"], c) for row in rows for c in row["cells"]), key=lambda item: item[1]["ra"])
    return {"model": "m.pth", "run": {}, "clean": {"nd_score": clean}, "corruptions": rows,
            "mra": sum(row["rr"] for row in rows) / len(rows),
            "worst": {"name": worst_name, "severity": worst["severity"], "ra": worst["ra"]}}


def test_two_models_side_by_side(tmp_path, capsys):
    before = _summary(0.7, {"lidar_fog": [(1, 0.63), (2, 0.56)], "lidar_missing": [(1, 0.35), (2, 0.35)]})
    robust = _summary(0.6, {"lidar_fog": [(1, 0.57), (2, 0.54)]})
    paths = []
    for name, summary in (("before", before), ("robust", robust)):
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "robustness.json")
        paths[-1].write_text(json.dumps(summary))
    table = run([str(path) for path in paths] + ["--out", str(tmp_path / "table.md")])
    lines = table.splitlines()
    assert lines[0] == ("| model | clean NDS | mRA | mRA, shared | worst corruption | worst cell | NDS, LiDAR missing "
                        "| corruptions |")
    # before: lidar_fog RA 0.9 / 0.8 (RR 0.85), lidar_missing 0.5 / 0.5 (RR 0.5); mRA 0.675; over the one
    # corruption both ran, lidar_fog: 0.85.
    assert lines[2] == ("| before | 0.700 | 0.675 | 0.850 | lidar_missing (RR 0.500) | lidar_missing s1 (RA 0.500) "
                        "| 0.350 | 2 |")
    # robust: lidar_fog RA 0.95 / 0.9; no LiDAR-missing cell.
    assert lines[3] == "| robust | 0.600 | 0.925 | 0.925 | lidar_fog (RR 0.925) | lidar_fog s2 (RA 0.900) | n/a | 1 |"
    assert lines[-1].endswith("over the 1 every one ran at the same severities: lidar_fog.")
    assert (tmp_path / "table.md").read_text() == table + "\n" and table in capsys.readouterr().out
    assert run([str(path) for path in paths] + ["--names", "a", "b"]).splitlines()[2].startswith("| a | 0.700 |")


def test_alike_summaries_need_no_shared_column_and_other_severities_are_not_shared(tmp_path):
    fog = {"lidar_fog": [(1, 0.63), (2, 0.56)]}
    paths = []
    for name, summary in (("a", _summary(0.7, fog)), ("b", _summary(0.6, fog)),
                          ("c", _summary(0.6, {"lidar_fog": [(3, 0.3)]}))):
        (tmp_path / name).mkdir()
        paths.append(str(tmp_path / name / "robustness.json"))
        (tmp_path / name / "robustness.json").write_text(json.dumps(summary))
    alike = run(paths[:2]).splitlines()
    assert "mRA, shared" not in alike[0] and len(alike) == 4
    # c ran lidar_fog at severity 3 only: nothing is shared
    lines = run(paths).splitlines()
    assert lines[4] == "| c | 0.600 | 0.500 | n/a | lidar_fog (RR 0.500) | lidar_fog s3 (RA 0.500) | n/a | 1 |"
    assert lines[-1].endswith("over the 0 every one ran at the same severities: none.")


def test_bad_files_are_one_line_errors(tmp_path, capsys):
    wrong = tmp_path / "metrics.json"
    wrong.write_text(json.dumps({"nd_score": 0.5}))
    for argv, message in (([str(tmp_path / "absent.json")], "absent.json"), ([str(wrong)], "not a robustness.json")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 1 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run([str(wrong), str(wrong)])  # the same folder name twice: --names needed
    summary = _summary(0.7, {"lidar_fog": [(1, 0.63)]})
    del summary["corruptions"][0]["rr"]  # a row without its RR: named, not a KeyError from the table
    wrong.write_text(json.dumps(summary))
    with pytest.raises(SystemExit) as stop:
        main([str(wrong)])
    assert stop.value.code == 1 and f"{wrong}: not a robustness.json" in capsys.readouterr().err


def test_a_summary_without_corruptions_shows_na_and_shared_names_are_sorted(tmp_path):
    """A summary of the clean cell alone (no corruption: mRA and the worst cell None, as robustness_summary writes
    them) is one to compare: n/a where it has no figure. And the note names the corruptions every summary ran in
    alphabetical order, whatever the order of the first summary's rows."""
    a = _summary(0.7, {"lidar_missing": [(1, 0.35)], "lidar_fog": [(1, 0.63)]})
    clean_only = {"model": "m.pth", "run": {}, "clean": {"nd_score": 0.6}, "corruptions": [], "mra": None,
                  "worst": None}
    c = _summary(0.6, {"lidar_fog": [(1, 0.54)], "lidar_missing": [(1, 0.3)], "points_reducing": [(1, 0.48)]})
    paths = {}
    for name, summary in (("a", a), ("b", clean_only), ("c", c)):
        (tmp_path / name).mkdir()
        paths[name] = str(tmp_path / name / "robustness.json")
        (tmp_path / name / "robustness.json").write_text(json.dumps(summary))
    lines = run([paths["a"], paths["b"]]).splitlines()
    # a: lidar_missing RA 0.5, lidar_fog 0.9: mRA 0.7; nothing is shared with b
    assert lines[2] == ("| a | 0.700 | 0.700 | n/a | lidar_missing (RR 0.500) | lidar_missing s1 (RA 0.500) | 0.350 "
                        "| 2 |")
    assert lines[3] == "| b | 0.600 | n/a | n/a | n/a | n/a | n/a | 0 |"
    lines = run([paths["a"], paths["c"]]).splitlines()
    assert lines[-1].endswith("over the 2 every one ran at the same severities: lidar_fog, lidar_missing.")
