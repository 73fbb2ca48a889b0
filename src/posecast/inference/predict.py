"""Predict from a checkpoint: PNG folders, a GIF beside the poses, and the lab's submission.csv."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io.video import side_by_side, write_gif, write_png_folder, write_submission
from ..data.lab import VideoSequence, load_frame, load_pose_folder, load_test
from ..perf import to_float
from .load import load_model
from ..rollout import predict, rollout_precision


def predict_files(checkpoint: str | Path, out_dir: str | Path, *, first_frame: str | Path | None = None,
                  poses: str | Path | None = None, test_data: str | Path | None = None,
                  z_mode: str | None = None, seed: int = 0, device: str = "cpu",
                  precision: str | None = None) -> dict[str, Any]:
    """Predict from (first frame, pose folder) or from the lab's test layout (plus submission.csv).

    ``precision`` (auto | fp32 | bf16) overrides the checkpoint config's ``runtime.precision``."""
    model, cfg = load_model(checkpoint, device)
    precision = rollout_precision(precision, cfg, device)
    size = (cfg.data.frame_H, cfg.data.frame_W)
    z = z_mode or cfg.inference.z_infer
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if test_data is not None:
        seqs = load_test(test_data, size)
    elif first_frame is not None and poses is not None:
        pose_t = load_pose_folder(poses, size)
        seqs = [VideoSequence("prediction", load_frame(first_frame, size)[None], pose_t, has_gt=False)]
    else:
        raise ValueError("give --first-frame and --poses, or --test-data")
    preds = []
    for s in seqs:  # sequences may differ in length: one rollout each
        pred = predict(model, s.frames[:1], s.poses[None], z_mode=z, seed=seed, precision=precision,
                       mirror=cfg.inference.mirror_average)[0].cpu()
        preds.append(pred)
        write_png_folder(out / s.name, pred)
        write_gif(out / f"{s.name}.gif", side_by_side(pred, to_float(s.poses), labels=["prediction", "pose"]))
    result: dict[str, Any] = {"sequences": [s.name for s in seqs], "out_dir": str(out)}
    if test_data is not None:
        result["submission"] = str(write_submission(out / "submission.csv", preds))
    return result
