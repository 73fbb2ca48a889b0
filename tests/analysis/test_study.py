"""Studies: variants that differ only in the studied fields; trained, resumed, reused; then a report."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from posecast import cli
from posecast import config as cfgmod
from posecast.analysis.study import STUDIES, run_study, study_configs
from posecast.config import ConfigError
from posecast.training.schedules import Schedules


def _flat(cfg: cfgmod.Config) -> dict:
    return {f"{s}.{k}": v for s, d in cfg.to_dict().items() if isinstance(d, dict) for k, v in d.items()}


def _diff_keys(configs: dict[str, cfgmod.Config]) -> set[str]:
    flats = list(map(_flat, configs.values()))
    return {k for k in flats[0] if len({repr(f[k]) for f in flats}) > 1}


def _study_cfg() -> cfgmod.Config:
    # 2 epochs, 2 KL cycles: Monotonic 0, 0.5; Cyclical 0, 0; None 1, 1 -- three different schedules
    return cfgmod.override(cfgmod.preset("tiny"), num_epoch=2, kl_anneal_cycle=2, seed=3)


def test_kl_study_configs_differ_only_in_the_kl_schedule():
    configs = study_configs("kl-annealing", cfgmod.preset("small"))
    assert list(configs) == ["monotonic", "cyclical", "none"]
    assert _diff_keys(configs) == {"schedule.kl_anneal_type"}
    assert [c.schedule.kl_anneal_type for c in configs.values()] == ["Monotonic", "Cyclical", "None"]


def test_teacher_forcing_study_schedules():
    base = cfgmod.override(cfgmod.preset("small"), num_epoch=6, tfr_sde=2, tfr_d_step=0.25)
    configs = study_configs("teacher-forcing", base)
    assert list(configs) == ["step-decay", "linear-decay", "always", "never"]
    assert _diff_keys(configs) <= {"schedule.tfr", "schedule.tfr_mode", "schedule.tfr_d_step"}
    tables = {name: [Schedules(c, 1).tfr(e) for e in range(6)] for name, c in configs.items()}
    expected = {"step-decay": [1, 1, 0.75, 0.5, 0.25, 0], "linear-decay": [1, 1, 1, 2 / 3, 1 / 3, 0],
                "always": [1] * 6, "never": [0] * 6}
    assert list(tables) == list(expected)
    for name, values in expected.items():
        assert tables[name] == pytest.approx(values, abs=1e-9), name


def test_unknown_study_or_variant():
    with pytest.raises(ConfigError, match="unknown study"):
        study_configs("dropout", cfgmod.preset("tiny"))
    with pytest.raises(ConfigError, match="unknown variant"):
        study_configs("kl-annealing", cfgmod.preset("tiny"), ["sigmoid"])
    assert set(STUDIES) == {"kl-annealing", "teacher-forcing"}


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def kl_study(tmp_path_factory, analysis_data):
    """A KL study interrupted after one epoch (a time budget), then completed by a second call."""
    out = tmp_path_factory.mktemp("study") / "kl"
    first = run_study("kl-annealing", analysis_data, out, cfgmod.override(_study_cfg(), max_time=1e-3), report=False,
                      log=lambda s: None)
    second = run_study("kl-annealing", analysis_data, out, _study_cfg(), media=True, log=lambda s: None)
    return out, first, second


@pytest.mark.slow
def test_kl_study_trains_three_runs_differing_only_in_kl(kl_study, analysis_data):
    out, first, second = kl_study
    assert first.trained == ["monotonic", "cyclical", "none"] and not first.reused
    assert second.resumed == ["monotonic", "cyclical", "none"] and not second.trained
    configs = {n: cfgmod.load(out / n / "config.yaml") for n in ("monotonic", "cyclical", "none")}
    assert _diff_keys(configs) == {"schedule.kl_anneal_type"}  # the same seed and everything else
    assert {c.runtime.seed for c in configs.values()} == {3}
    rows = {n: _metrics(out / n) for n in configs}
    assert {n: [float(r["beta"]) for r in rs] for n, rs in rows.items()} == {
        "monotonic": [0.0, 0.5], "cyclical": [0.0, 0.0], "none": [1.0, 1.0]}
    # one batch per epoch, the same seed: the same initial weights and batch, so the same MSE in
    # epoch 1, whatever the schedule
    mse = {n: [r["train_mse"] for r in rs] for n, rs in rows.items()}
    assert mse["monotonic"][0] == mse["cyclical"][0] == mse["none"][0]
    # epoch 1 is not compared: the posterior starts at N(0, I) (zero-initialised head), so the KL
    # term and its gradient start near 0 and beta barely moves a 2-epoch tiny run
    for n in configs:
        assert (out / n / "data_path.txt").read_text() == str(Path(analysis_data).resolve())
        assert all(r["val_psnr"] for r in rows[n])
    # the report compares the three
    index = second.report
    assert index == out / "report" / "index.html"
    text = index.read_text()
    for n in configs:
        assert f"Run {n}" in text and f"media/{n}/val.gif" in text
        assert (out / "report" / "media" / n / "val.gif").exists()
    assert "KL annealing study" in text and "schedule.kl_anneal_type" in text


def test_kl_study_reuses_finished_runs(kl_study, analysis_data):
    out, _, _ = kl_study
    stamps = {n: (out / n / "checkpoints" / "last.ckpt").stat().st_mtime_ns for n in ("monotonic", "cyclical", "none")}
    res = run_study("kl-annealing", analysis_data, out, _study_cfg(), report=False, log=lambda s: None)
    assert res.reused == ["monotonic", "cyclical", "none"] and not res.trained and not res.resumed
    assert stamps == {n: (out / n / "checkpoints" / "last.ckpt").stat().st_mtime_ns for n in stamps}


def test_kl_study_refuses_a_folder_of_another_config(kl_study, analysis_data):
    out, _, _ = kl_study
    with pytest.raises(ConfigError, match="another config.*optim.lr"):
        run_study("kl-annealing", analysis_data, out, cfgmod.override(_study_cfg(), lr=0.01), report=False,
                  log=lambda s: None)


@pytest.mark.slow
def test_study_command_reuses_the_runs(kl_study, analysis_data, capsys):
    out, _, _ = kl_study
    argv = ["study", "kl-annealing", "--data", str(analysis_data), "--preset", "tiny", "--num_epoch", "2",
            "--kl_anneal_cycle", "2", "--seed", "3", "--out", str(out), "--no-progress", "--no-media"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "reused ['monotonic', 'cyclical', 'none']" in printed and "trained none" in printed
    assert cli.main(argv[:-1] + ["--lr", "0.5"]) == 2  # another config: a clean error, nothing trained
    assert "holds a run of another config" in capsys.readouterr().err
