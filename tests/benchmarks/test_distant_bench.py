"""benchmarks/distant.py: the val sequence walking away from the camera (data.sampling.zoom_sequence),
scored over the pixels the zoom did not fill in."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from posecast.data.lab import VideoSequence, load_split
from posecast.data.sampling import feet, zoom_grid, zoom_sequence
from posecast.metrics import psnr
from posecast_testing import SYNTH, load_benchmark

distant = load_benchmark("distant")


def test_zoom_sequence_is_the_identity_at_scale_one_and_masks_what_it_fills(synth_root: Path) -> None:
    val = load_split(synth_root, "val", (SYNTH["height"], SYNTH["width"]))
    T = len(val)
    same, valid = zoom_sequence(val, torch.ones(T))
    assert torch.equal(same.frames, val.frames) and torch.equal(same.poses, val.poses) and bool(valid.all())
    scales = torch.linspace(1.0, 0.5, T)
    far, valid = zoom_sequence(val, scales)
    _, inside = zoom_grid(scales, feet(val.poses[None]).expand(T, 2), SYNTH["height"], SYNTH["width"])
    assert torch.equal(valid, inside) and bool(valid[0].all()) and not bool(valid[-1].all())
    assert torch.equal(far.frames[0], val.frames[0]) and not torch.equal(far.frames[-1], val.frames[-1])
    with pytest.raises(ValueError, match="as many scales"):
        zoom_sequence(val, torch.ones(T - 1))


def test_masked_psnr_is_psnr_over_the_valid_pixels() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 4, 5, generator=gen), torch.rand(2, 3, 4, 5, generator=gen)
    full = torch.ones(2, 4, 5, dtype=torch.bool)
    assert torch.allclose(distant.masked_psnr(a, b, full), psnr(a, b))
    half = full.clone()
    half[:, :, 3:] = False  # the last two columns do not count: changing them changes nothing
    b2 = b.clone()
    b2[..., 3:] = 1 - b2[..., 3:]
    assert torch.allclose(distant.masked_psnr(a, b, half), distant.masked_psnr(a, b2, half))
    assert torch.allclose(distant.masked_psnr(a, b, half), psnr(a[..., :3], b[..., :3]))
    none = full.clone()
    none[1] = False  # a frame without pixels to score (no skeleton): NaN, left out of the summary
    p = distant.masked_psnr(a, b, none)
    assert p[0] == psnr(a[0], b[0]) and p[1].isnan()
    s = distant._summary(p, p, torch.tensor([True, True]))
    assert s["psnr_mean"] == s["psnr_min"] == s["far_psnr_mean"] == round(float(p[0]), 3)
    assert s["frames_without_pixels"] == 1


def test_walk_away_runs_and_scale_one_is_the_val_score(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path,
                                                       capsys) -> None:
    common = ["--checkpoint", str(tiny_checkpoint), "--data", str(synth_root), "--results", str(tmp_path)]
    same = distant.main([*common, "--end-scale", "1", "--name", "same"])
    assert same["frame"]["psnr_mean"] == pytest.approx(same["val_psnr_mean"], abs=1e-3)
    assert same["far_frames"] == 0 and same["frame"]["far_psnr_mean"] is None
    res = distant.main([*common, "--end-scale", "0.5"])
    assert res["frames"] == SYNTH["val_len"] - 1 and res["far_frames"] > 0 and res["weights"] == "trained"
    for key in ("frame", "person"):
        r = res[key]
        assert r["psnr_min"] <= r["psnr_mean"] and r["far_psnr_mean"] is not None
    assert res["person"]["psnr_mean"] != res["frame"]["psnr_mean"]  # fewer pixels: another figure
    assert json.loads((tmp_path / "distant.json").read_text()) == res
    md = (tmp_path / "distant.md").read_text()
    assert f"| the frame | {res['frame']['psnr_mean']:.2f} |" in md and res["cpu"] in md
    assert f"| the person (<= 5 px from the skeleton) | {res['person']['psnr_mean']:.2f} |" in md
    for suffix in ("_psnr.png", ".gif", "_frames.png"):
        assert (tmp_path / f"distant{suffix}").stat().st_size > 0
    with pytest.raises(SystemExit) as info:
        distant.main([*common, "--end-scale", "0"])
    assert info.value.code == 2 and "--end-scale" in capsys.readouterr().err


def test_walk_away_scales_run_from_one_to_the_end_scale() -> None:
    poses = torch.full((5, 3, 8, 12), 255, dtype=torch.uint8)
    poses[:, :, 2:7, 5] = 0  # a stick figure standing at column 5, feet at row 6
    seq = VideoSequence("s", poses.clone(), poses)
    _, valid, scales = distant.walk_away(seq, 5, 0.5)
    assert scales[0] == 1 and scales[-1] == pytest.approx(0.5) and bool((scales[1:] < scales[:-1]).all())
    assert valid.shape == (5, 8, 12)
