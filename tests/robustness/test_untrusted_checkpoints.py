"""Checkpoints from other hands: crafted pickles, other presets, other format versions, damaged
files, and the lab template's own layout, through `posecast evaluate / predict / train --resume`."""
from __future__ import annotations

import dataclasses
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from posecast import config as cfgmod
from posecast.inference.load import lab_config, lab_dims, map_lab_state_dict
from posecast.models import PoseCVAE
from posecast.models.lab import lab_key_to_posecast, posecast_key_to_lab
from posecast.io.checkpoint import (FORMAT_VERSION, CheckpointError, load_checkpoint,
                                          save_checkpoint)
from robustness_support import lab_layout, lab_state_dict, run_cli, save_like_the_lab, snapshot


class _Payload:
    """Unpickles into a call that writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _write_evil(path: Path, marker: Path, kind: str) -> Path:
    state = {"format": "posecast", "format_version": FORMAT_VERSION, "config": {},
             "model": {"w": torch.zeros(2)}, "extra": _Payload(marker)}
    if kind == "zip":
        torch.save(state, path)
    elif kind == "legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:  # a plain pickle named .ckpt
        with path.open("wb") as f:
            pickle.dump(state, f)
    return path


@pytest.mark.parametrize("kind", ["zip", "legacy", "pickle"])
def test_crafted_pickle_is_refused_and_never_runs(kind: str, tmp_path: Path, synth_root: Path,
                                                  tiny_checkpoint: Path) -> None:
    live = _write_evil(tmp_path / "live.ckpt", tmp_path / "live_marker", kind)
    if kind == "zip":  # the payload is live: an unsafe load runs it
        torch.load(live, weights_only=False)
        assert (tmp_path / "live_marker").exists()
    marker = tmp_path / "marker"
    evil = _write_evil(tmp_path / "evil.ckpt", marker, kind)
    for args in (["evaluate", "--checkpoint", evil, "--data", synth_root, "--out", tmp_path / "ev"],
                 ["predict", "--checkpoint", evil, "--test-data", synth_root, "--out", tmp_path / "pr"]):
        code, _, err = run_cli(args)
        assert code == 2 and "error:" in err and str(evil) in err
        assert "run code" in err if kind != "pickle" else "cannot be loaded safely" in err
        assert not marker.exists()
    # as the last checkpoint of a run to resume
    run = Path(shutil.copytree(tiny_checkpoint.parent.parent, tmp_path / "run"))
    shutil.copy(evil, run / "checkpoints" / "last.ckpt")
    code, _, err = run_cli(["train", "--resume", run, "--data", synth_root, "--no-progress"])
    assert code == 2 and "last.ckpt" in err and not marker.exists()


def test_resume_with_a_checkpoint_of_another_preset_names_what_differs(tiny_checkpoint: Path, synth_root: Path,
                                                                       tmp_path: Path) -> None:
    run = Path(shutil.copytree(tiny_checkpoint.parent.parent, tmp_path / "run"))
    before = snapshot(run)
    cfgmod.preset("small").to_yaml(run / "config.yaml")  # the run's config now says preset small
    code, out, err = run_cli(["train", "--resume", run, "--data", synth_root, "--no-progress"])
    assert code == 2
    assert "preset 'tiny'" in err and "preset 'small'" in err
    assert "model.F_dim: 8 in the checkpoint, 32 here" in err and "model.D_dim: 8 in the checkpoint, 48 here" in err
    # a model override on resume: the same check
    (run / "config.yaml").write_bytes(before["config.yaml"])
    code, out, err = run_cli(["train", "--resume", run, "--data", synth_root, "--F_dim", "16", "--no-progress"])
    assert code == 2 and "model.F_dim: 8 in the checkpoint, 16 here" in err
    assert snapshot(run) == before  # nothing trained, nothing written


@pytest.mark.parametrize("version, words", [(0, "older posecast checkpoint format (version 0)"),
                                            (FORMAT_VERSION + 1, "newer posecast")])
def test_other_format_version(version: int, words: str, tiny_checkpoint: Path, synth_root: Path,
                              tmp_path: Path) -> None:
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["format_version"] = version
    path = tmp_path / "v.ckpt"
    torch.save(state, path)
    code, _, err = run_cli(["evaluate", "--checkpoint", path, "--data", synth_root, "--out", tmp_path / "e"])
    assert code == 2 and words in err and f"reads version {FORMAT_VERSION}" in err and str(path) in err


@pytest.mark.parametrize("damage, words", [("truncated", "truncated or corrupt"), ("empty", "empty"),
                                           ("image", "not a PyTorch checkpoint"),
                                           ("folder", "found a folder")])
def test_damaged_checkpoint_file(damage: str, words: str, tiny_checkpoint: Path, synth_root: Path,
                                 tmp_path: Path) -> None:
    path = tmp_path / "d.ckpt"
    data = tiny_checkpoint.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "image":
        shutil.copy(synth_root / "train" / "train_img" / "frame0.png", path)
    else:
        path.mkdir()
    code, _, err = run_cli(["predict", "--checkpoint", path, "--test-data", synth_root, "--out", tmp_path / "p"])
    assert code == 2 and words in err and str(path) in err
    assert "Traceback" not in err


def test_resume_from_a_truncated_last_checkpoint_says_so(tiny_checkpoint: Path, synth_root: Path,
                                                        tmp_path: Path) -> None:
    run = Path(shutil.copytree(tiny_checkpoint.parent.parent, tmp_path / "run"))
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # damaged after the fact (posecast writes atomically)
    code, _, err = run_cli(["train", "--resume", run, "--data", synth_root, "--no-progress"])
    assert code == 2 and "truncated or corrupt" in err and str(last) in err


def test_weights_that_do_not_fit_their_config_name_the_tensor(tmp_path: Path, synth_root: Path) -> None:
    cfg = cfgmod.preset("tiny")
    state = {"config": cfg.to_dict(), "model": PoseCVAE(cfgmod.override(cfg, F_dim=16).model).state_dict()}
    save_checkpoint(tmp_path / "m.ckpt", state)
    code, _, err = run_cli(["evaluate", "--checkpoint", tmp_path / "m.ckpt", "--data", synth_root,
                            "--out", tmp_path / "e"])
    assert code == 2 and "frame_encoder.network" in err


# -- the lab template's checkpoint layout ------------------------------------------------------------
LAB = cfgmod.preset("lab")
# what `posecast evaluate` builds for a lab checkpoint: the lab preset (with model.arch: lab once
# posecast has the lab's own modules)
LAB_AS_LOADED = lab_config(lab_state_dict())


def test_lab_key_names_map_exactly_where_the_modules_agree() -> None:
    """RGB_Encoder and Gaussian_Predictor: every true lab key has its posecast key, same shape, 1:1."""
    ours = PoseCVAE(LAB.model).state_dict()
    for lab_module, mine in (("frame_transformation.", "frame_encoder."), ("Gaussian_Predictor.", "posterior_net.")):
        theirs = {k: s for k, s in lab_layout().items() if k.startswith(lab_module)}
        mapped = {lab_key_to_posecast(k): s for k, s in theirs.items()}
        assert set(mapped) == {k for k in ours if k.startswith(mine)}
        for k, shape in mapped.items():
            assert tuple(ours[k].shape) == tuple(shape), k
        assert {posecast_key_to_lab(k) for k in mapped} == set(theirs)
    assert lab_key_to_posecast("frame_transformation.1.block.0.conv1.0.weight") == \
        "frame_encoder.network.1.conv.conv1.weight"
    assert lab_key_to_posecast("frame_transformation.1.block.1.conv.bias") == "frame_encoder.network.1.ffn.conv_in.bias"
    assert lab_key_to_posecast("Gaussian_Predictor.0.skip.weight") == "posterior_net.network.0.skip.weight"
    assert lab_dims(lab_state_dict()) == {"F_dim": 128, "L_dim": 32, "N_dim": 12, "D_dim": 192}


def _posecast_as_lab(model: PoseCVAE) -> dict[str, torch.Tensor]:
    return {posecast_key_to_lab(k): v for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_lab_layout_checkpoint_gives_the_same_predictions_in_evaluate_and_predict(synth_root: Path,
                                                                                 tmp_path: Path) -> None:
    """A PoseCVAE's weights under the lab's key names, saved as the lab's Trainer saves, load in
    `posecast evaluate` and `posecast predict` and predict exactly what the posecast checkpoint does."""
    torch.manual_seed(0)
    model = PoseCVAE(LAB_AS_LOADED.model)
    ours = tmp_path / "ours.ckpt"
    save_checkpoint(ours, {"config": LAB_AS_LOADED.to_dict(), "model": model.state_dict(), "epoch": 12})
    lab = save_like_the_lab(tmp_path / "epoch=12.ckpt", _posecast_as_lab(model))
    assert load_checkpoint(lab)["format"] == "lab"
    poses = tmp_path / "poses"
    poses.mkdir()
    for n in range(3):
        shutil.copy(synth_root / "test" / "test_label" / "0" / f"frame{n}.png", poses / f"frame{n}.png")
    first = synth_root / "test" / "test_img" / "0" / "frame0.png"
    outputs = {}
    for name, ckpt in (("ours", ours), ("lab", lab)):
        code, _, err = run_cli(["evaluate", "--checkpoint", ckpt, "--data", synth_root, "--length", 3,
                                "--no-video", "--out", tmp_path / f"eval_{name}"])
        assert code == 0, err
        code, _, err = run_cli(["predict", "--checkpoint", ckpt, "--first-frame", first, "--poses", poses,
                                "--out", tmp_path / f"pred_{name}"])
        assert code == 0, err
        outputs[name] = {**snapshot(tmp_path / f"pred_{name}" / "prediction"),
                         "psnr": (tmp_path / f"eval_{name}" / "psnr_per_frame.csv").read_bytes()}
    assert outputs["lab"] == outputs["ours"]


def test_lab_checkpoint_of_other_sizes_says_which(tmp_path: Path) -> None:
    sd = {posecast_key_to_lab(k): v for k, v in PoseCVAE(cfgmod.override(LAB, F_dim=64).model).state_dict().items()}
    with pytest.raises(CheckpointError, match=r"checkpoint's sizes are \{'F_dim': 64"):
        map_lab_state_dict(sd, PoseCVAE(LAB.model))


@pytest.mark.slow
def test_true_lab_checkpoint_loads_in_evaluate_and_predict(synth_root: Path, tmp_path: Path) -> None:
    lab = save_like_the_lab(tmp_path / "Best.ckpt", lab_state_dict())
    code, _, err = run_cli(["evaluate", "--checkpoint", lab, "--data", synth_root, "--length", 3,
                            "--no-video", "--out", tmp_path / "e"])
    assert code == 0, err
    code, _, err = run_cli(["predict", "--checkpoint", lab, "--test-data", synth_root, "--out", tmp_path / "p"])
    assert code == 0, err


def test_checkpoint_files_get_the_usual_file_mode(tmp_path: Path) -> None:
    """Checkpoints are shared: written through a temporary file, they still get 0666 minus the
    umask like any new file (mkstemp alone gives 0600), and keep the mode of a file they replace."""
    import os
    import stat

    mask = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "a.ckpt", {"config": {}, "model": {"w": torch.zeros(1)}})
        assert stat.S_IMODE((tmp_path / "a.ckpt").stat().st_mode) == 0o644
        (tmp_path / "a.ckpt").chmod(0o640)
        save_checkpoint(tmp_path / "a.ckpt", {"config": {}, "model": {"w": torch.ones(1)}})
        assert stat.S_IMODE((tmp_path / "a.ckpt").stat().st_mode) == 0o640
    finally:
        os.umask(mask)
