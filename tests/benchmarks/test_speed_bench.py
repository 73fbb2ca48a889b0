"""benchmarks/speed.py: its reference rollout equals posecast's in fp32, and its tiny mode runs (the
reference loss it times: tests/models/test_reference.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posecast import config as cfgmod
from posecast.rollout import predict
from posecast_testing import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
SPEED = ROOT / "benchmarks" / "speed.py"
KEYS = ["train_tf_speedup", "train_notf_speedup", "rollout_speedup", "peak_fraction", "train_tf_fps",
        "rollout_fps", "gflop_per_frame"]


@pytest.fixture(scope="module")
def speed():
    return load_benchmark("speed")


def test_reference_rollout_equals_posecast_rollout(speed) -> None:
    cfg = cfgmod.preset("tiny")
    model = speed.build_model(cfg).eval()
    frames, poses = speed.make_clips(cfg, 2, 6)
    z = torch.randn(2, 5, cfg.model.N_dim, 32, 64, generator=torch.Generator().manual_seed(0))
    ref = torch.cat([speed.reference_rollout(model, frames[i:i + 1, 0], poses[i:i + 1], z=z[i:i + 1])
                     for i in range(2)])  # one sequence at a time, as the reference does
    with torch.inference_mode():
        fast = model.rollout(speed.to_float(frames[:, 0]), speed.to_float(poses), z=z)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
    # with sampled z: posecast's predict and the reference draw from the same generator stream
    # in a different order, so only the shapes and ranges are compared
    out = predict(model, frames[:, 0], poses, seed=0)
    assert out.shape == ref.shape and 0 <= float(out.min()) and float(out.max()) <= 1


@pytest.mark.slow
def test_flop_counts(speed) -> None:
    cfg = cfgmod.preset("lab")
    fl = speed.flops_per_frame(speed.build_model(cfg), cfg, 16)
    # the lab's model: about 6.4 GFLOP per predicted frame the lab's way (two frame encodings)
    assert 5.5 < fl["forward_lab_way"] < 7.5
    assert fl["forward_posecast"] < fl["forward_lab_way"]  # each frame encoded once
    assert 2.5 * fl["forward_posecast"] < fl["train_posecast"] < 3.5 * fl["forward_posecast"]
    assert fl["rollout"] < fl["forward_lab_way"]


@pytest.mark.slow
def test_tiny_benchmark_runs_and_writes_json(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "speed.json", tmp_path / "speed.md"
    proc = subprocess.run([sys.executable, str(SPEED), "--tiny", "--threads", "1", "--json", str(out_json),
                           "--out", str(out_md)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out_json.read_text())
    assert set(data) == {"tiny"}
    r = data["tiny"]
    for k in KEYS:
        assert k in r, k
        assert isinstance(r[k], float) and r[k] > 0, (k, r[k])
    assert 0 < r["peak_fraction"] < 2
    assert r["gflop_per_frame"] > r["fwd_gflop_per_frame"] > 0
    assert r["train_rss_mb"] > 0 and r["rollout_rss_mb"] >= r["rollout_rss_end_mb"] >= r["rollout_rss_short_mb"] > 0
    assert abs(r["rollout_growth_net_mb"]) < 16  # no graph kept: nothing grows with the length but the output
    table = out_md.read_text()
    assert table.strip() == proc.stdout.strip()
    assert "| tiny | training" in table and "load average" in table


@pytest.mark.slow
def test_options_worker_times_a_frozen_compiled_rollout(speed) -> None:
    """The options table's torch.compile-with-freezing row: a rollout only (no training step, since
    frozen weights are constants), in a fresh process, on the tiny preset."""
    opts = dict(precision="fp32", channels_last=True, compile=True, threads=1, allocator=True)
    spec = {"what": "ablation", "preset": "tiny", "precision": "fp32", "opts": opts, "B": 1, "T": 3,
            "roll_b": 2, "roll_t": 9, "reps": 1, "freeze": True, "rollout_only": True}
    r = speed.run_worker(spec)
    assert "train_fps" not in r
    assert r["rollout_fps"] > 0 and r["rollout_first_s"] > 0


@pytest.mark.slow
def test_op_profile_tables(tmp_path: Path) -> None:
    """benchmarks/op_profile.py: op times add up to the step, convolutions are counted and ranked."""
    mod = load_benchmark("op_profile")
    out = tmp_path / "ops.md"
    text = mod.main(["--preset", "tiny", "--threads", "1", "--warm", "1", "--roll-len", "5", "--top", "500", "--out", str(out)])
    assert out.read_text() == text
    assert text.count("## ") == 2 and "| convolution_backward |" in text and "| convolution |" in text
    # only the encoders' first layers (they read the RGB frames and poses) skip the input gradient
    weights_only = [line for line in text.splitlines() if line.startswith("| bwd (weights only) |")]
    assert weights_only and all(line.startswith("| bwd (weights only) | 3->") for line in weights_only)
    # by hand: a 3x3 convolution, 4 -> 8 channels, 2 images of 5 x 6: 2 FLOPs per multiply-add
    x, w = torch.randn(2, 4, 5, 6), torch.randn(8, 4, 3, 3)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    expected = 2 * 2 * 8 * 5 * 6 * 4 * 9
    conv = torch.ops.aten.convolution.default
    assert mod.conv_flops(conv, (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1), y) == expected
    assert mod.conv_flops(torch.ops.aten.conv2d.default, (x, w), y, {"padding": [1, 1]}) == expected
    go = torch.randn_like(y)  # the backward: both gradients, or the weights' only
    bwd = torch.ops.aten.convolution_backward.default
    args = (go, x, w, [8], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False])
    assert mod.conv_flops(bwd, args, None) == 2 * expected
    assert mod.conv_flops(bwd, args[:-1] + ([False, True, False],), None) == expected


@pytest.mark.slow
def test_op_profile_takes_a_yaml_recipe_with_its_own_batch(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("preset: tiny\ndata: {batch_size: 2, train_vi_len: 3, frame_H: 16, frame_W: 24}\n"
                      "model: {arch: unet, levels: 2, prev_frame_cond: false, output: masked_first, "
                      "first_frame_cond: true}\n")
    text = load_benchmark("op_profile").main(["--preset", str(recipe), "--threads", "1", "--warm", "1",
                                              "--roll-len", "4", "--top", "3"])
    assert "training step, 2 clips x 2 predicted frames" in text and "rollout, " in text
    assert "| convolution |" in text


@pytest.mark.slow
def test_options_worker_runs_with_onednn_off(speed) -> None:
    """The options table's "oneDNN off" row: the worker honours POSECAST_BENCH_ONEDNN=0 and gives
    the same training loss as with oneDNN (the same model and batch; only the kernels differ)."""
    opts = {"precision": "fp32", "channels_last": False, "compile": False, "threads": 1, "allocator": True}
    spec = {"what": "ablation", "preset": "tiny", "precision": "fp32", "opts": opts, "B": 1, "T": 3,
            "roll_b": 1, "roll_t": 5, "reps": 1}
    on = speed.run_worker(spec)
    off = speed.run_worker(spec, {"POSECAST_BENCH_ONEDNN": "0"})
    assert on["train_fps"] > 0 and off["train_fps"] > 0 and off["rollout_fps"] > 0
    assert off["mkldnn_enabled"] is False and on["mkldnn_enabled"] is True
