"""Sweeps on Optuna (``main.py --sweep FILE``): every trial ordinary runs judged on validation, the results table and
figure, a sweep that continues after Ctrl-C, two workers on one study (SQLite here, PostgreSQL where a server can be
started), and the bad inputs: one line, exit 2, nothing written."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import main
import zoo
from core.artifacts import REPO_ROOT, ArtifactPaths
from training import sweep

FC = "mnist_model_fc"
GRID = """
name = "{name}"
model = "fc"
seeds = [1]
{extra}
[settings]
epochs = {epochs}
val_split = 40
batch_size = 50

[search]
dropout = [0.0, 0.3]
width = [0.25, 0.5]
"""


def sweep_file(folder: Path, name: str = "tiny", epochs: int = 1, extra: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(GRID.format(name=name, epochs=epochs, extra=extra))
    return path


def worker(runs: Path, data: Path, *argv: str) -> subprocess.Popen:
    """``main.py`` in a process of its own with runs/ at ``runs`` (as a second machine would run it). Ctrl-C
    raises KeyboardInterrupt in it as at a terminal, even where this test process was started in the background
    (a shell's ``&`` ignores SIGINT in what it starts, and a child inherits that)."""
    code = textwrap.dedent(f"""
        import signal
        import sys
        from pathlib import Path
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from core import artifacts
        artifacts.RUNS_ROOT = Path({str(runs)!r})
        import main
        sys.exit(main.main({[*argv, '--data-dir', str(data), '--no-verify', '--device', 'cpu', '--no-tensorboard']!r}))
    """)
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def said(outputs: list[tuple[str, str]]) -> list[str]:
    """Each worker's stderr without its progress bars: what a failure said."""
    return ["\n".join(line for line in err.splitlines() if "it/s" not in line and line.strip())[-1500:]
            for _, err in outputs]


def finished_trials(spec_path: Path, runs: Path) -> dict[str, int]:
    """Per trial id, how many finished trials the study holds."""
    import optuna

    spec = sweep.read_spec(spec_path)
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{runs / 'sweeps' / spec.name / 'study.db'}")
    done: dict[str, int] = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        ident = sweep.trial_id(spec, dict(t.params))
        done[ident] = done.get(ident, 0) + 1
    return done


def test_a_grid_sweep_trains_each_combination_as_an_ordinary_run_and_writes_its_results(
        runs: Path, data: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    path = sweep_file(tmp_path)
    assert main.main(["--sweep", str(path), "--data-dir", str(data), "--no-verify", "--device", "cpu",
                      "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    folder = runs / "sweeps" / "tiny"
    found = json.loads((folder / "results.json").read_text())
    assert len(found["trials"]) == 4 and (folder / "results.png").stat().st_size > 0
    assert "Chosen on validation" in (folder / "results.md").read_text() and "| dropout | width |" in out
    for trial in found["trials"]:  # each an ordinary run, its knobs recorded, its value the validation accuracy
        record = json.loads(ArtifactPaths(FC, Path(trial["runs"][0])).metrics.read_text())
        assert record["status"] == "complete"
        assert {k: record["config"][k] for k in ("dropout", "width")} == trial["settings"]
        assert trial["val_acc"] == [record["history"]["epochs"][-1]["val_acc"]]
    assert len([r for r in zoo.list_runs(["fc"]) if r.folder.name.startswith("tiny-")]) == 4
    assert found["chosen"] == max(found["trials"], key=lambda t: t["mean"])["id"]


def test_an_interrupted_sweep_continues_where_it_stopped(runs: Path, data: Path, tmp_path: Path) -> None:
    path = sweep_file(tmp_path, "resumable", epochs=2)
    first = worker(runs, data, "--sweep", str(path))
    deadline = time.monotonic() + 240
    while not list(runs.glob(f"{FC}/resumable-*/outputs/{FC}_metrics.json")) or not any(
            json.loads(p.read_text()).get("status") == "complete" for p in runs.glob(f"{FC}/resumable-*/outputs/*_metrics.json")):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    if first.returncode == 0:
        pytest.skip("the sweep ended before Ctrl-C reached it")
    assert first.returncode == 130 and "run the same command again to continue" in err.strip().splitlines()[-1]
    assert "Traceback" not in err and "failed" not in err  # Optuna's own report of the trial stays quiet
    kept = {p: p.stat().st_mtime for p in runs.glob(f"{FC}/resumable-*/outputs/{FC}_params.pth")}
    assert kept
    assert main.main(["--sweep", str(path), "--data-dir", str(data), "--no-verify", "--device", "cpu",
                      "--no-tensorboard"]) == 0
    assert finished_trials(path, runs) == {ident: 1 for ident in finished_trials(path, runs)}
    assert len(finished_trials(path, runs)) == 4
    assert all(p.stat().st_mtime == m for p, m in kept.items())  # a finished run is not trained again


def test_two_workers_share_one_study(runs: Path, data: Path, tmp_path: Path) -> None:
    path = sweep_file(tmp_path, "shared")
    workers = [worker(runs, data, "--sweep", str(path)) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], said(outputs)
    done = finished_trials(path, runs)
    assert sorted(done) == sorted(sweep.trial_id(sweep.read_spec(path), c) for c in sweep.combinations(sweep.read_spec(path)))
    assert all("trial" in out for out, _ in outputs)  # each worker ran trials of its own


def _postgres() -> tuple[list[str], str] | None:
    """How to run PostgreSQL's programs here (as the postgres user when this is root), or None."""
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if initdb is None:
        return None
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return prefix, str(Path(initdb).parent)


def test_two_workers_share_one_study_on_postgresql(runs: Path, data: Path, tmp_path: Path) -> None:
    found = _postgres()
    if found is None:
        pytest.skip("no PostgreSQL server here (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="no PostgreSQL driver (pip install psycopg2-binary)")
    prefix, bin_dir = found
    cluster = Path(tempfile.mkdtemp(prefix="zoo-pg-"))  # in /tmp itself: pytest's folders are root's alone
    if prefix:
        shutil.chown(cluster, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*prefix, f"{bin_dir}/initdb", "-D", str(cluster / "data"), "-A", "trust", "-U", "sweeper"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, f"{bin_dir}/pg_ctl", "-D", str(cluster / "data"), "-l", str(cluster / "log"), "-w", "-o",
                    f"-p {port} -k {cluster} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        url = f"postgresql+psycopg2://sweeper@127.0.0.1:{port}/postgres"
        path = sweep_file(tmp_path, "pg-shared")
        workers = [worker(runs, data, "--sweep", str(path), "--storage", url) for _ in range(2)]
        outputs = [w.communicate(timeout=600) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], said(outputs)
        import optuna

        study = optuna.load_study(study_name="pg-shared", storage=url)
        complete = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
        assert len({(t.params["dropout"], t.params["width"]) for t in complete}) == 4
        assert not (runs / "sweeps" / "pg-shared" / "study.db").exists()  # the study is in PostgreSQL
    finally:
        subprocess.run([*prefix, f"{bin_dir}/pg_ctl", "-D", str(cluster / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(cluster, ignore_errors=True)


OK = 'model = "fc"\n[settings]\nval_split = 40\n'


@pytest.mark.parametrize(("body", "words"), [
    (OK + "[search]\nfoo = [1, 2]\n", "unknown setting 'foo' in [search]"),
    (OK + "[search]\nbatch_norm = [true, false]\n", "model fc has no batch norm"),
    (OK + "[search]\ndropout = [0.0, 2.0]\n", "outside [0, 1)"),
    ('model = "fc"\n[settings]\nval_split = 0\n[search]\ndropout = [0.1]\n', "val_split must be > 0"),
    ('colour = "red"\n' + OK + "[search]\ndropout = [0.1]\n", "unknown key 'colour'"),
    (OK + "[search\n", "not valid TOML"),
    ('sampler = "variants"\n' + OK + '[[variants]]\nname = "a"\n[[variants]]\nname = "b"\n', "the same settings"),
])
def test_a_bad_sweep_file_is_one_line_exit_2_nothing_written(runs: Path, data: Path, tmp_path: Path, capsys,  # noqa: ANN001
                                                            body: str, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    assert main.main(["--sweep", str(path), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sweep" in err[0] and str(path) in err[0] and words in err[0], err
    assert not runs.exists()


def test_an_unreachable_database_is_one_line_exit_2_nothing_written(runs: Path, data: Path, tmp_path: Path,
                                                                   capsys) -> None:  # noqa: ANN001
    path = sweep_file(tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg2://nobody:secret@127.0.0.1:{port}/none"
    assert main.main(["--sweep", str(path), "--storage", url, "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--storage" in err[0] and "cannot open the study" in err[0] and "secret" not in err[0], err
    assert not runs.exists()


@pytest.mark.parametrize(("argv", "flag"), [(["--epochs", "3"], "--epochs"), (["--model", "3"], "--model")])
def test_a_training_flag_beside_a_sweep_is_refused(runs: Path, tmp_path: Path, capsys, argv: list[str], flag: str) -> None:  # noqa: ANN001
    assert main.main(["--sweep", str(sweep_file(tmp_path)), *argv]) == 2
    assert flag in capsys.readouterr().err and not runs.exists()


def test_storage_without_a_sweep_is_refused(capsys) -> None:  # noqa: ANN001
    assert main.main(["--model", "3", "--storage", "sqlite:///x.db"]) == 2
    assert "--storage" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["example", "ablation_fc", "ablation_v3", "ablation_v3_no_bn"])
def test_the_committed_sweep_files_resolve_every_trial(name: str) -> None:
    spec = sweep.read_spec(REPO_ROOT / "sweeps" / f"{name}.toml")  # every combination resolved as a run would be
    assert len(sweep.combinations(spec)) >= 2 and spec.settings["val_split"] > 0
