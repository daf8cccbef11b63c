"""Taking a model out (ONNX, int8, torch.hub, safetensors) and rerunning a run from its record."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import config
import data_utils
import hubconf
import main
import model_strategy
from core import artifacts
from core.artifacts import REFERENCE_ROOT, ArtifactPaths
from deploy import export

TINY = ["--model", "1", "--epochs", "2", "--batch-size", "64", "--no-verify", "--device", "cpu"]


def test_onnx_export_of_v3_predicts_like_pytorch_on_the_whole_test_set(mnist_root, tmp_path, monkeypatch,
                                                                       capsys) -> None:
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")  # the committed V3, exported into runs/
    assert main.main(["--model", "3", "--export", "onnx", "--data-dir", str(mnist_root)]) == 0
    printed = capsys.readouterr().out
    assert "same digit on 100.00% of the test set" in printed and f"under {REFERENCE_ROOT}" in printed
    path = tmp_path / "runs" / "mnist_model_3" / "reference" / "outputs" / "mnist_model_3.onnx"  # read the reference
    test = data_utils.load_mnist(mnist_root)["test"]
    images = test.images[:3000].float() / 255.0
    onnx = export.onnx_logits(export.session(path.read_bytes()), images, batch_size=777)  # a batch size never traced
    assert (onnx - export.torch_logits(model_strategy.load_trained("3"), images)).abs().max() < export.LOGIT_TOLERANCE


def test_int8_v3_stays_within_a_tenth_of_a_point_of_float32_on_a_test_subset(mnist_root, tmp_path) -> None:
    splits = data_utils.load_mnist(mnist_root)
    subset = data_utils.MNISTTensors(splits["test"].images[:4000], splits["test"].labels[:4000])
    report = export.export(model_strategy.load_trained("3"), "int8", tmp_path / "v3_int8.onnx", splits["train"], subset)
    assert abs(report.export_test_acc - report.torch_test_acc) <= 0.10
    assert report.size_bytes <= len(export.onnx_bytes(model_strategy.load_trained("3"))) / 3  # the size target


def test_a_missing_export_package_is_one_line_and_exit_2(synthetic_root, tmp_path, monkeypatch, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    code = main.main(["--model", "3", "--export", "onnx", "--data-dir", str(synthetic_root), "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "onnxruntime" in err[0] and "pip install" in err[0]
    assert not (tmp_path / "outputs" / "mnist_model_3.onnx").exists()


@pytest.mark.parametrize("name", ["v3", "3", "cnn-bn", "cnn_bn", "fc_deep"])
def test_torch_hub_loads_the_committed_model_by_every_key_and_alias(name) -> None:
    model = torch.hub.load(str(REFERENCE_ROOT), name, source="local", pretrained=True)
    key = model_strategy.get_strategy(name.replace("_", "-")).key
    reference = model_strategy.load_trained(key)
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_hubconf_has_one_documented_entry_per_key_and_alias() -> None:
    names = {n for n in dir(hubconf) if not n.startswith("_") and callable(getattr(hubconf, n))}
    for key in model_strategy.available_models():
        expected = {key, key.replace("-", "_"), *model_strategy.get_strategy(key).aliases}
        assert expected <= names and all(getattr(hubconf, n).__doc__ for n in expected)
    fresh = torch.hub.load(str(REFERENCE_ROOT), "fc", source="local", pretrained=False)
    trained = model_strategy.load_trained("fc")
    assert fresh.training and not torch.equal(fresh.state_dict()["layers.1.weight"], trained.state_dict()["layers.1.weight"])


@pytest.mark.parametrize("key", model_strategy.available_models())
def test_the_committed_safetensors_hold_exactly_the_committed_pth_weights(key) -> None:
    paths = ArtifactPaths(model_strategy.get_strategy(key).stem, REFERENCE_ROOT)
    pth, st = (model_strategy.read_state_dict(p, key) for p in (paths.params, paths.safetensors))
    assert pth.keys() == st.keys() and all(torch.equal(pth[k], st[k]) and pth[k].dtype == st[k].dtype for k in pth)
    assert model_strategy.trained_params(key) == paths.safetensors


def test_a_run_writes_safetensors_and_loading_prefers_them(synthetic_root, tmp_path) -> None:
    out = tmp_path / "out"
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TINY]) == 0
    paths = ArtifactPaths("mnist_model_1", out)
    paths.params.write_bytes(b"damaged")  # the pickle is not needed when the safetensors file is there
    model = model_strategy.load_trained("1", out)
    expected = model_strategy.read_state_dict(paths.safetensors, "1")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
    paths.safetensors.write_bytes(b"damaged too")
    with pytest.raises(model_strategy.IncompatibleWeightsError, match="safetensors"):
        model_strategy.load_trained("1", out)


def test_config_reruns_a_recorded_run_exactly_and_flags_override_single_values(synthetic_root, tmp_path) -> None:
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(tmp_path / "a"), *TINY, "--seed", "7"]) == 0
    record = tmp_path / "a" / "outputs" / "mnist_model_1_metrics.json"
    assert main.main(["--config", str(record), "--out-dir", str(tmp_path / "b")]) == 0
    first, again = (ArtifactPaths("mnist_model_1", tmp_path / r).safetensors.read_bytes() for r in "ab")
    assert first == again
    assert main.main(["--config", str(record), "--out-dir", str(tmp_path / "c"), "--epochs", "1"]) == 0
    rerun = json.loads((tmp_path / "c" / "outputs" / "mnist_model_1_metrics.json").read_text())
    assert rerun["config"]["epochs"] == 1 and rerun["config"]["seed"] == 7


def test_a_record_older_than_the_augment_flag_reruns_with_rotation_not_todays_recipe(tmp_path) -> None:
    record = tmp_path / "old_metrics.json"
    record.write_text(json.dumps({"config": {"model": "3", "epochs": 15, "out_dir": "elsewhere"}}))
    assert config.read_settings(record) == {"model": "3", "epochs": 15, "augment": "rotation", "outliers": 0.0}
    record.write_text(json.dumps({"config": {"model": "3", "augment": "rotation-scan"}}))
    assert config.read_settings(record)["augment"] == "rotation-scan"


@pytest.mark.parametrize("text,suffix,message,flag", [
    ('{"epochs": "two"}', ".json", "epochs must be int", "--config"),
    ('{"lr": true}', ".json", "lr must be float or null", "--config"),
    ('{"colour": "red"}', ".json", "unknown key 'colour'", "--config"),
    ('model = "fc"\nepochs = 1\nfoo = 3\n', ".toml", "unknown key 'foo'", "--config"),
    ("{not json", ".json", "not valid JSON", "--config"),
    ("[1, 2]", ".json", "expected a table of settings", "--config"),
    ('{"model": "1", "val_split": -3}', ".json", "-3 is outside [0, 60000]", "--val-split"),
])
def test_a_bad_config_file_is_one_line_naming_the_key(tmp_path, capsys, text, suffix, message, flag) -> None:
    path = tmp_path / f"settings{suffix}"
    path.write_text(text)
    assert main.main(["--config", str(path), "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"main.py: error: argument {flag}: ") and message in err[0]


def test_a_hand_written_toml_file_sets_a_run(synthetic_root, tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(f'model = "1"\nepochs = 1\nbatch_size = 64\ndata_dir = "{synthetic_root}"\nverify = false\n'
                    'device = "cpu"\n')
    assert main.main(["--config", str(path), "--out-dir", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "outputs" / "mnist_model_1_metrics.json").read_text())
    assert record["config"]["epochs"] == 1 and record["config"]["batch_size"] == 64 and len(record["history"]["epochs"]) == 1


def test_inspect_draws_the_feature_maps_pipeline_and_saliency_and_records_every_layer(synthetic_root, tmp_path,
                                                                                    capsys) -> None:
    out = tmp_path / "out"
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TINY, "--inspect", "5"]) == 0
    printed = capsys.readouterr().out
    paths = ArtifactPaths("mnist_model_1", out)
    for figure in (paths.feature_maps_plot, paths.pipeline_plot, paths.saliency_plot):
        assert figure.stat().st_size > 5000 and str(figure) in printed
    record = json.loads(paths.activations.read_text())
    relus = [layer for layer in record["layers"] if layer["kind"] == "ReLU"]
    assert relus and all(0 < layer["zero_fraction"] < 1 for layer in relus)  # a ReLU zeroes some, never all
    assert [layer["layer"] for layer in record["layers"]][-1] == "head"
    assert main.main(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TINY, "--inspect", "64"]) == 2
    assert "test image 64 does not exist (0-63)" in capsys.readouterr().err


def test_saliency_is_the_input_gradient_of_the_predicted_logit_and_leaves_no_grad_behind() -> None:
    from analysis import inspection
    model = model_strategy.load_trained("3")
    image = data_utils.normalize(torch.rand(1, 28, 28))
    sal, predicted, probabilities = inspection.saliency(model, image[0])
    x = image.clone().requires_grad_(True)
    model(x)[0, predicted].backward()
    assert torch.allclose(sal, x.grad[0, 0].abs()) and sal.shape == (28, 28)
    assert abs(float(probabilities.sum()) - 1) < 1e-5 and int(probabilities.argmax()) == predicted
    model.zero_grad(set_to_none=True)
    inspection.saliency(model, image[0])
    assert all(p.grad is None for p in model.parameters())
