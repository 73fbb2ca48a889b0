"""benchmarks/precision.py (fp32 against bf16 rollouts of a checkpoint) runs and reports consistently."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from posecast_testing import load_benchmark


@pytest.mark.slow
def test_precision_benchmark_tiny(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path) -> None:
    bench = load_benchmark("precision")
    res = bench.main(["--checkpoint", str(tiny_checkpoint), "--data", str(synth_root), "--length", "10",
                      "--samples", "2", "--threads", "1", "--results", str(tmp_path)])
    assert [(r["z"], r["precision"]) for r in res["rows"]] == [("zero", "fp32"), ("zero", "bf16"),
                                                               ("prior", "fp32"), ("prior", "bf16")]
    assert res["frames"] == 9
    for fp32, bf16 in (res["rows"][0:2], res["rows"][2:4]):
        assert bf16["psnr_change"] == pytest.approx(bf16["psnr_mean"] - fp32["psnr_mean"])
        assert abs(bf16["psnr_change"]) < 1.0 and bf16["vs_fp32_psnr_min"] > 25  # a tiny model: close
        assert bf16["vs_fp32_psnr_mean"] >= bf16["vs_fp32_psnr_min"]
        assert fp32["rollout_fps"] > 0 and bf16["rollout_fps"] > 0
    assert res["rows"][2]["samples"] == 2
    md = (tmp_path / "precision.md").read_text()
    assert md.count("| bf16 |") == 2 and "9 predicted frames" in md
    saved = json.loads((tmp_path / "precision.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(res["rows"])) and saved["threads"] == 1
    assert (tmp_path / "precision_psnr.png").stat().st_size > 0


def test_precision_benchmark_rejects_bad_arguments(tmp_path: Path, capsys) -> None:
    bench = load_benchmark("precision")
    with pytest.raises(SystemExit) as e:
        bench.main(["--checkpoint", str(tmp_path / "none.ckpt"), "--results", str(tmp_path)])
    assert e.value.code == 2 and "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench.main(["--checkpoint", str(tmp_path / "none.ckpt"), "--samples", "0"])
    assert e.value.code == 2 and "--samples must be >= 1" in capsys.readouterr().err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as e:
        bench.main(["--checkpoint", str(bad), "--results", str(tmp_path)])
    assert e.value.code == 2 and str(bad) in capsys.readouterr().err


def test_precision_benchmark_names_a_missing_dataset(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        load_benchmark("precision").main(["--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path / "nodata"),
                                          "--results", str(tmp_path)])
    assert e.value.code == 2 and "nodata" in capsys.readouterr().err
