"""The benchmark and report scripts run and say what they promise (no timings are asserted)."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from core import provenance
from core.artifacts import REPO_ROOT


def test_bench_training_runs_both_pipelines_and_prints_every_figure(mnist_root, tmp_path):
    out = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_training", "--epochs", "1", "--subset", "512",
                           "--data-dir", str(mnist_root), "--json-out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record == json.loads(out.read_text())
    assert set(record["pipelines"]) == {"project", "classic"}
    for figures in record["pipelines"].values():
        assert {"median_epoch_s", "images_per_s", "epochs_wall_s", "to_last_epoch_s", "time_to_99.4_s",
                "final_test_acc", "peak_rss_mb", "peak_pss_mb"} <= figures.keys()
        assert figures["peak_rss_mb"] > 0 and figures["images_per_s"] > 0
    assert record["epoch_time_ratio_project_over_classic"] > 0


def test_the_docs_tables_are_the_ones_report_generates_from_the_committed_files():
    from tools import report

    for name, document in report.homes().items():  # each table in exactly one of README.md and docs/*.md
        block = report.marker(name).search(document.read_text())
        assert block.group(1) == make_table(report, name), f"{name} table in {document.name} is stale:" \
            " python -m tools.report --readme"


def make_table(report, name: str) -> str:
    return report.TABLES[name](report.REFERENCE_ROOT)


def test_the_tree_passes_ruff_with_the_pyproject_configuration():
    import pytest

    pytest.importorskip("ruff", reason="ruff is in requirements.txt; the CI venv has it")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]


def test_seeds_bound_times_one_seed_the_stack_and_single_thread_copies_and_derives_its_figures(mnist_root, tmp_path):
    out = tmp_path / "bound.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.seeds_bound", "--seeds", "2", "--steps", "3", "--warmup", "1",
                           "--rounds", "1", "--data-dir", str(mnist_root), "--json-out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert len(record["runs_ms"]["side_by_side"]) == 1 and record["cores"] >= 1
    (one,), (stacked,), (side,) = (record["runs_ms"][kind] for kind in ("one_seed", "stacked", "side_by_side"))
    assert min(one, stacked, side) > 0 and record["one_seed_ms"] == round(one, 2)
    assert record["processes"] == min(2, record["cores"]) and record["threads_each"] == record["cores"] // record["processes"]
    side_over_one = 2 * side / record["processes"] / one  # two seeds' batches, shared by the processes
    assert record["stacked_over_one"] == round(stacked / one, 2)
    assert record["side_by_side_over_one"] == round(side_over_one, 2)
    assert record["needed_speedup_per_core"] == round(side_over_one / 1.5, 2)
    assert "**" in done.stdout and "2 seeds stacked" in done.stdout


def test_a_record_names_a_repository_script_from_the_repository_root_not_the_checkout_folder(tmp_path) -> None:
    script = provenance.REPO / "benchmarks" / "rejection.py"
    assert provenance.command_line([str(script), "--data-dir", "d"]) == ["benchmarks/rejection.py", "--data-dir", "d"]
    outside = str(tmp_path / "mine.py")  # a script of the user's own stays as it was given
    assert provenance.command_line([outside]) == [outside]
    assert provenance.command_line(["-c"]) == ["-c"]


@pytest.mark.parametrize("command", ["calibration", "gate_shares"])
def test_a_development_benchmark_without_its_data_names_the_missing_file_in_one_line(command, tmp_path, monkeypatch,
                                                                                      capsys):
    module = importlib.import_module(f"benchmarks.{command}")
    monkeypatch.setattr("sys.argv", [command, "--data-dir", str(tmp_path)])  # holds none of the development sets
    with pytest.raises(SystemExit) as stop:
        module.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert f"error: {tmp_path / 'OPTDIGITS' / 'optdigits-train.csv'}: cannot be read" in err.strip().splitlines()[-1]


def test_member_agreement_counts_how_many_members_alone_let_through_what_they_let_through_together():
    import torch

    from benchmarks.member_agreement import agreement

    each = torch.tensor([[0.9, 0.9, 0.1, 0.9], [0.9, 0.1, 0.1, 0.9], [0.9, 0.1, 0.1, 0.1]])  # 3 members, 4 non-digits
    found = agreement("letters", each, torch.ones(4), each.mean(0), 0.5, [0.5, 0.5, 0.5])
    assert found.passed == 2  # the first and the last: means 0.9 and 0.63
    assert found.passed_by == [0, 0, 1, 1] and found.alone == [3, 2, 1]  # the first by all three, the last by two
    assert "let through 2; of those, let through by 0-3 members alone: 0/0/1/1;" in found.line()
    twins = agreement("letters", torch.stack([each[0], each[0]]), torch.ones(4), each[0], 0.5, [0.5, 0.5])
    assert twins.correlation == pytest.approx((1.0, 1.0)) and twins.passed_by == [0, 0, 3]


def test_detector_batch_times_each_size_and_finds_the_same_answers_at_every_one(mnist_root, capsys) -> None:
    from analysis import detector
    from benchmarks import detector_batch

    code = detector_batch.main(["--data-dir", str(mnist_root), "--limit", "300", "--rounds", "1",
                                "--sizes", "1000,128,7"])  # 7: batches of several sizes, a short one last
    printed = capsys.readouterr().out
    assert code == 0 and "answers: identical at every batch size" in printed
    assert [line.split(":")[0] for line in printed.splitlines()[1:4]] == ["batch 1000", "batch 128", "batch 7"]
    assert f"300 held-out writers' digits, {len(detector.load().nets)} members" in printed


def test_detector_batch_reports_answers_that_differ_between_batch_sizes_and_exits_1(monkeypatch, capsys) -> None:
    import torch

    from benchmarks import detector_batch

    class Counting:  # a "detector" whose answers depend on the batch size, as one left in training mode would
        nets = [None]

        def digit_probability(self, digits, batch_size):  # noqa: ANN001, ANN202
            return torch.full((len(digits),), float(batch_size))

    monkeypatch.setattr(detector_batch.detector, "load", lambda root: Counting())
    monkeypatch.setattr(detector_batch, "held_out_writers", lambda root: (torch.zeros(5, 28, 28, dtype=torch.uint8),))
    assert detector_batch.main(["--rounds", "1", "--sizes", "4,2"]) == 1
    assert "answers: DIFFER between batch sizes" in capsys.readouterr().out


def test_detector_draws_mixes_the_members_that_differ_between_folders_and_keeps_one_of_those_alike(tmp_path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    from analysis import detector
    from benchmarks.detector_draws import draws

    weights, record = detector.paths(REPO_ROOT)
    for name in ("a", "b"):
        (tmp_path / name / "outputs").mkdir(parents=True)
        shutil.copy(record, tmp_path / name / "outputs")
    shutil.copy(weights, tmp_path / "a" / "outputs")
    state = load_file(str(weights))
    state["member1.layers.0.weight"] = state["member1.layers.0.weight"] + 0.01  # member1: the record's second seed
    save_file(state, str(tmp_path / "b" / "outputs" / weights.name))
    seeds = [m["seed"] for m in json.loads(record.read_text())["members"]]
    found = draws([tmp_path / "a", tmp_path / "b"])
    assert {seed: [folder for folder, _ in kept] for seed, kept in found.items()} == {
        seed: [str(tmp_path / "a")] + ([str(tmp_path / "b")] if seed == seeds[1] else []) for seed in seeds}


def test_detector_draws_names_a_folder_without_a_detector_and_missing_data_in_one_line(tmp_path, capsys) -> None:
    from benchmarks import detector_draws

    for argv, says in (([str(tmp_path)], f"{tmp_path / 'outputs' / 'digit_detector.safetensors'}: no detector there"),
                       (["--data-dir", str(tmp_path), str(REPO_ROOT)],
                        f"{tmp_path / 'OPTDIGITS' / 'optdigits-train.csv'}: cannot be read")):
        with pytest.raises(SystemExit) as stop:
            detector_draws.main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "Traceback" not in err and says in err.strip().splitlines()[-1]
