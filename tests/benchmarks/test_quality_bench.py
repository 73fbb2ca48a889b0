"""benchmarks/quality.py, short version: the best recipe trained briefly on the real train split
must beat copying frame 0 forward on the val sequence (the full 629-frame rollout).

Budget: 2 epochs of the best recipe (its cosine learning rate over those 2 epochs) at 1 thread,
in-training validation off (the full recipe trains for 52 epochs); z = 0 as in the recipe. The
figure and time on the AVX2-only AMD EPYC are in docs/testing.md. The data (../shared/data/dance
beside the repository, or $POSECAST_DANCE) is required: this test fails, never skips, when it is
missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from posecast import perf
from posecast_testing import dance_root, load_benchmark

ROOT = Path(__file__).resolve().parents[2]


SETS = ["threads=1", "val_every=1000", "partial=0.5"]  # half the clips: 24.37 dB after 2 epochs at width 24 (copy: 16.05)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a hang guard: a few minutes on the slower (AVX2-only) CPU
def test_short_quality_benchmark_beats_copying_the_first_frame(tmp_path: Path) -> None:
    res = load_benchmark("quality").main(["--config", "best", "--data", str(dance_root()),
                           "--epochs", "2", "--quiet", "--out", str(tmp_path / "run"), "--results",
                           str(tmp_path / "results"), "--marks", "0.001,1000", "--set", *SETS])
    assert res["frames"] == 629
    assert res["copy_first_psnr"] == pytest.approx(16.05, abs=0.01)  # the val sequence, as in its README
    assert res["median_frame_psnr"] == pytest.approx(18.63, abs=0.01)
    assert res["psnr_mean"] > res["copy_first_psnr"] + 1.0, res
    assert res["copy_first_ssim"] < res["ssim_mean"] < 1 and res["psnr_min"] <= res["psnr_mean"]
    # time to quality: no epoch within 0.06 s; within 1000 minutes, the last epoch (the final figure)
    first, last = res["time_to_quality"]
    assert first == {"minutes": 0.001, "epoch": None}
    assert last["epoch"] == 2 and last["psnr_mean"] == res["psnr_mean"]
    assert res["cpu"] == perf.cpu_summary() and res["precision"] == perf.resolve_precision("auto")
    stem = "quality_best+" + ",".join(SETS)
    saved = json.loads((tmp_path / "results" / f"{stem}.json").read_text())
    assert saved["psnr_mean"] == res["psnr_mean"]
    md = (tmp_path / "results" / f"{stem}.md").read_text()
    assert "| 1000 min | 2 |" in md and "| 0.001 min | no epoch finished |" in md and res["cpu"] in md
    for suffix in ("_psnr.png", ".gif"):
        assert (tmp_path / "results" / f"{stem}{suffix}").stat().st_size > 0
    # the recipe's moving average of the weights scores by default; the same run's trained weights on --rescore
    assert res["weights"] == "moving average" and "weights: moving average" in md
    raw = load_benchmark("quality").main(["--config", "best", "--data", str(dance_root()), "--epochs", "2", "--quiet",
                                          "--out", str(tmp_path / "run"), "--results", str(tmp_path / "results"),
                                          "--marks", "1000", "--rescore", "--set", *SETS, "inference.use_ema=false"])
    assert raw["weights"] == "trained" and raw["epochs"] == 2 and raw["psnr_mean"] != res["psnr_mean"]
    raw_md = (tmp_path / "results" / f"{stem},inference.use_ema=false.md").read_text()
    assert "as scored in training, moving average weights" in raw_md and "weights: trained" in raw_md
    assert raw["psnr_mean"] > raw["copy_first_psnr"] + 1.0, raw


def test_ablation_rows_say_whether_an_effect_is_resolved() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import ablation

    common = dict(psnr_min=20.0, ssim_mean=0.9, copy_first_psnr=16.05, copy_first_ssim=0.641, cpu="cpu",
                  precision="fp32")

    def runs(*psnrs: float, train: float = 180.0) -> list[dict]:
        return [dict(common, seed=i, psnr_mean=p, train_seconds=train) for i, p in enumerate(psnrs)]

    rows = [ablation.summarise("recipe", [], runs(25.0, 26.0)),
            ablation.summarise("raw poses", ["pose_input=raw"], runs(19.0, 20.0, train=200.0)),
            ablation.summarise("direct", ["output=direct"], runs(25.5, 27.0)),
            ablation.summarise("better", ["x=1"], runs(26.5, 27.0)),
            ablation.summarise("z prior", ["(evaluation only)"], runs(25.0, 25.2, train=0.0))]
    assert rows[0]["psnr_mean"] == 25.5 and rows[0]["psnr_spread"] == 1.0 and rows[0]["psnr_runs"] == [25.0, 26.0]
    text = ablation.table(rows, 6, [0, 1], 2)
    body = [line for line in text.splitlines() if line.startswith("| ") and "variant" not in line]
    assert [line.count("|") for line in body] == [10] * 5  # no stray pipes inside a cell
    assert body[0].startswith("| recipe | 25.50 | 25.00 / 26.00 |  |  |  |")
    # -6 in both seeds: a point interval, yet two seeds resolve nothing
    assert "| raw poses | 19.50 | 19.00 / 20.00 | -6.00 | -6.00 (-6.00 to -6.00), n 2 | no (2 paired seeds, 3 needed) |" in body[1]
    # +0.5 and +1.0: mean 0.75, sd 0.354, t(1) 12.706: 0.75 -+ 3.18
    assert "| direct | 26.25 | 25.50 / 27.00 | +0.75 | +0.75 (-2.43 to +3.93), n 2 | no (2 paired seeds" in body[2]
    assert body[4].endswith("| (none) |")
    assert "resolved: that interval excludes 0, with n at least 3" in text
    one = [ablation.summarise("recipe", [], runs(25.0)), ablation.summarise("v", ["a=1"], runs(30.0))]
    assert ablation.resolved(one[1], one[0]) == "no (1 paired seed, 3 needed)"
    # four seeds whose ranges overlap, each seed's variant 0.1-0.4 dB above the recipe's run of that seed:
    # mean 0.25, sd 0.129, t(3) 3.182: 0.25 -+ 0.205, resolved by the pairing
    four = [ablation.summarise("recipe", [], runs(25.0, 26.0, 27.0, 28.0)),
            ablation.summarise("v", ["a=1"], runs(25.3, 26.2, 27.4, 28.1))]
    n, mean, lo, hi = ablation.paired(four[1], four[0])
    assert (n, round(mean, 3), round(lo, 3), round(hi, 3)) == (4, 0.25, 0.045, 0.455)
    assert ablation.resolved(four[1], four[0]) == "yes, better"
    worse = ablation.summarise("v-", ["a=3"], runs(24.7, 25.8, 26.6, 27.9))
    assert ablation.resolved(worse, four[0]) == "yes, worse"
    # matched by seed, not by position: the same runs listed in another order pair alike
    shuffled = dict(four[1], seeds=[2, 0, 3, 1], psnr_runs=[27.4, 25.3, 28.1, 26.2])
    assert ablation.paired(shuffled, four[0]) == ablation.paired(four[1], four[0])
    # the same differences with their signs mixed: not resolved
    mixed = ablation.summarise("w", ["a=2"], runs(25.3, 25.8, 27.4, 27.9))
    assert ablation.paired(mixed, four[0])[2] < 0 < ablation.paired(mixed, four[0])[3]
    assert ablation.resolved(mixed, four[0]) == "no"
    # only the seeds both ran are paired: 3 of them here, and none for seeds the recipe did not run
    partial = dict(four[1], seeds=[0, 1, 2], psnr_runs=[25.3, 26.2, 27.4])
    assert ablation.paired(partial, four[0])[0] == 3
    other = dict(mixed, seeds=[7, 8, 9, 10])
    assert ablation.paired(other, four[0]) is None
    assert ablation.resolved(other, four[0]) == "no (0 paired seeds, 3 needed)"
    assert all("|" not in label for label, _ in ablation.VARIANTS)
    assert "--jobs 2" in text and "--seeds 0,1" in text


def test_error_regions_put_the_error_where_it_is() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch

    import error_regions

    T, H, W = 4, 16, 32
    poses = torch.ones(T, 3, H, W)
    poses[:, 0, 4:12, 20] = 0.5  # a skeleton line at x = 20 in every frame ...
    poses[1, 0, 4:12, 20] = 1.0  # ... but frame 1's (the first frame's region) at x = 5
    poses[1, 0, 4:12, 5] = 0.5
    truth = torch.full((T, 3, H, W), 0.5)
    pred = truth.clone()
    pred[2:, :, 8, 20] += 0.2  # wrong on the skeleton of frames 2 and 3 only
    res = error_regions.error_regions(pred, truth, poses, radius=2)
    assert res["error_share"] == {"person": 1.0, "first": 0.0, "rest": 0.0}
    assert res["psnr_if_person_perfect"] == 100.0  # nothing left outside the person: the clamp's 1e-10
    pred2 = truth.clone()
    pred2[2:, :, 8, 5] += 0.2  # wrong where the first frame's person was
    assert error_regions.error_regions(pred2, truth, poses, radius=2)["error_share"]["first"] == 1.0
    masks = error_regions.skeleton_regions(poses, 2)
    assert masks[0, 0, 8, 18:23].eq(1).all() and masks[0, 0, 8, 17] == 0 and masks[0, 0, 8, 23] == 0


@pytest.mark.parametrize("name,argv,says", [
    ("quality", ["--data", "{tmp}/none"], "dataset folder not found"),
    ("quality", ["--config", "{tmp}/none.yaml"], "config file not found"),
    ("quality", ["--set", "no_such_field=1"], "unknown config field"),
    ("quality", ["--set", "lr"], "--set takes FIELD=VALUE"),
    ("quality", ["--set", "lr=["], "a value is not YAML"),
    ("ablation", ["--data", "{tmp}/none"], "dataset folder not found"),
    ("ablation", ["--only", "0", "{broken}"], "variant {broken} (no_such_field=1): unknown config field"),
    ("error_regions", ["--checkpoint", "{tmp}/none.ckpt"], "checkpoint not found"),
    ("distant", ["--checkpoint", "{tmp}/none.ckpt"], "checkpoint not found"),
])
def test_benchmarks_stop_with_one_line_on_bad_input(tmp_path: Path, capsys, monkeypatch, name: str,
                                                    argv: list[str], says: str) -> None:
    bench = load_benchmark(name)
    broken = len(getattr(bench, "VARIANTS", []))  # ablation: the number of a variant added with a broken override
    argv = [a.format(tmp=tmp_path, broken=broken) for a in argv]
    says = says.format(broken=broken)
    if "--only" in argv:  # refused before any other variant runs
        monkeypatch.setattr(bench, "VARIANTS", [*bench.VARIANTS, ("broken", ["no_such_field=1"])])
    if name != "error_regions":  # it writes no results folder
        argv += ["--results", str(tmp_path)]
    with pytest.raises(SystemExit) as info:  # before any training
        bench.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.glob("**/*.ckpt"))


def test_ablation_refuses_a_seed_given_twice(tmp_path: Path, capsys) -> None:
    """Two runs of one seed would pair a run with its twin: refused before anything trains."""
    bench = load_benchmark("ablation")
    with pytest.raises(SystemExit) as info:
        bench.main(["--seeds", "0,1,0", "--results", str(tmp_path), "--runs", str(tmp_path / "runs")])
    assert info.value.code == 2 and "--seeds: each seed once, got 0,1,0" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_rescore_scores_a_finished_run_again_without_training(synth_root: Path, tmp_path: Path, capsys) -> None:
    """--rescore: the same run's checkpoints, scored with other inference fields; a run trained
    otherwise, or no run, is refused with one line."""
    quality = load_benchmark("quality")
    run = tmp_path / "run"
    common = ["--config", "tiny", "--data", str(synth_root), "--epochs", "2", "--val-len", "12", "--quiet",
              "--out", str(run), "--marks", "1000"]
    first = quality.main([*common, "--results", str(tmp_path / "a"), "--set", "val_every=1000", "z_infer=zero"])
    assert first["mirror_average"] is False and first["rescored"] is False
    # the mark scored the last epoch: that checkpoint stays, epoch 1's is deleted and its time recorded
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("epoch_*.ckpt")) == ["epoch_002.ckpt"]
    assert (ckpts / "last.ckpt").exists()
    (pruned,) = json.loads((ckpts / "epoch_times.json").read_text())
    assert pruned["name"] == "epoch_001.ckpt" and pruned["epoch"] == 1
    kept = torch.load(ckpts / "epoch_002.ckpt", map_location="cpu", weights_only=True)["elapsed"]
    between = (pruned["elapsed"] + kept) / 2 / 60  # a mark that would score epoch 1's deleted checkpoint
    with pytest.raises(SystemExit) as info:
        quality.main([*common[: common.index("--marks")], "--marks", f"{between:.8f}", "--rescore",
                      "--results", str(tmp_path / "f"), "--set", "val_every=1000", "z_infer=zero"])
    assert info.value.code == 2
    assert "needs the checkpoint of epoch 1, deleted after the run was scored" in capsys.readouterr().err
    keep = tmp_path / "keep"
    every = quality.main([*common[: common.index("--out")], "--out", str(keep), "--marks", "1000", "--keep-checkpoints",
                          "--results", str(tmp_path / "g"), "--set", "val_every=1000", "z_infer=zero"])
    assert every["psnr_mean"] == first["psnr_mean"]  # the same seed: the same weights
    assert len(list((keep / "checkpoints").glob("epoch_*.ckpt"))) == 2
    stamp = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    again = quality.main([*common, "--results", str(tmp_path / "b"), "--set", "val_every=1000", "z_infer=zero",
                          "--rescore"])
    assert again["psnr_mean"] == first["psnr_mean"] and again["epochs"] == first["epochs"] == 2
    assert again["rescored"] is True and (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    mirrored = quality.main([*common, "--results", str(tmp_path / "c"), "--rescore",
                             "--set", "val_every=1000", "mirror_average=true", "z_infer=zero"])
    assert mirrored["mirror_average"] is True and mirrored["psnr_mean"] != first["psnr_mean"]
    assert "mirror averaging on" in next((tmp_path / "c").glob("quality_*.md")).read_text()
    shorter = [*common[: common.index("--val-len")], "--val-len", "8", *common[common.index("--val-len") + 2:]]
    assert quality.main([*shorter, "--results", str(tmp_path / "e"), "--rescore", "--set", "threads=1"])["frames"] == 7
    base = common[: common.index("--out")]
    for out, sets, says in ((run, ["lr=0.5"], "trained otherwise than the config given: optim.lr"),
                            (run, ["seed=1"], "trained otherwise than the config given: runtime.seed"),
                            (tmp_path / "none", [], "no finished run to rescore")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            quality.main([*base, "--out", str(out), "--rescore", "--results", str(tmp_path / "d"),
                          "--set", "val_every=1000", *sets])
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2 and says in err and len(err.splitlines()) == 1, err
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as info:
        quality.main([*base, "--out", str(broken), "--rescore", "--results", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "cannot load checkpoint" in err and len(err.splitlines()) == 1, err


def test_ablation_reuses_only_a_finished_run_of_the_same_config_epochs_and_seed(tmp_path: Path) -> None:
    """`ablation.py --reuse`: a run stopped midway goes on where it stopped, and a run of another
    variant, epoch count or seed in the same folder is trained again, not read."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import ablation
    from posecast import config as cfgmod

    out = tmp_path / "v3_seed1"
    (out / "results").mkdir(parents=True)
    (out / "run").mkdir()
    cfgmod.override(cfgmod.preset("best"), seed=1).to_yaml(out / "run" / "config.yaml")
    sets = ["val_every=1000", "pose_input=raw", "threads=1"]
    row = {"config": "best+" + ",".join(sets), "epochs": 6, "psnr_mean": 26.0}
    (out / "results" / "quality_x.json").write_text(json.dumps(row))
    assert ablation.finished_run(out / "results", "best", 6, 1, sets) == row
    assert ablation.finished_run(out / "results", "best", 7, 1, sets) is None  # another epoch count
    assert ablation.finished_run(out / "results", "best", 6, 0, sets) is None  # another seed
    assert ablation.finished_run(out / "results", "best", 6, 1, sets[:1]) is None  # another variant
    assert ablation.finished_run(tmp_path / "none" / "results", "best", 6, 1, sets) is None  # never ran


def test_plan_only_prints_the_budgets_plan_and_trains_nothing(synth_root: Path, tmp_path: Path, capsys) -> None:
    """--plan-only: the epochs that fit --minutes from the step and validation times measured here
    (as a budgeted run plans them), printed; no run folder is made. Refused with --epochs."""
    from posecast.training.budget import epochs_within

    quality = load_benchmark("quality")
    out = tmp_path / "run"
    base = ["--config", "tiny", "--data", str(synth_root), "--out", str(out), "--quiet"]
    plan = quality.main([*base, "--minutes", "0.5", "--plan-only", "--set", "val_every=2"])
    assert plan["step_seconds"] > 0 and plan["val_seconds"] > 0 and plan["epochs"] >= 1
    assert plan["epochs"] == epochs_within(30, plan["step_seconds"] * plan["steps_per_epoch"], plan["val_seconds"], 2)
    assert f"-> {plan['epochs']} epochs (optim.num_epoch)" in capsys.readouterr().out
    assert not out.exists()
    with pytest.raises(SystemExit):
        quality.main([*base, "--minutes", "0.5", "--plan-only", "--epochs", "2"])
    with pytest.raises(SystemExit):  # tiny has no optim.minutes: a budget is needed
        quality.main([*base, "--plan-only"])


def test_a_budgeted_run_plans_again_after_its_first_epoch(synth_root: Path, tmp_path: Path) -> None:
    """--minutes: the probe's count, then the count from the first epoch's whole time (the budget's
    Replan), which the run trains and its config.yaml records."""
    from posecast import config as cfgmod

    res = load_benchmark("quality").main(["--config", "tiny", "--data", str(synth_root), "--out", str(tmp_path / "run"),
                                          "--results", str(tmp_path / "results"), "--quiet", "--minutes", "0.02",
                                          "--marks", "1000"])
    plan = res["plan"]
    assert plan["epochs"] >= 1 and plan["replan"].startswith("budget: the first epoch took")
    assert res["epochs"] == plan["replanned_epochs"] == cfgmod.load(tmp_path / "run" / "config.yaml").optim.num_epoch
