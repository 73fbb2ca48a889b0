"""Map the lab template's checkpoint keys onto PoseCVAE's."""
from __future__ import annotations

import torch
from torch import nn

from ..training.checkpoint import LAB_PREFIXES, CheckpointError


def map_lab_state_dict(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the lab's module prefixes, then match parameters in order, checking shapes."""
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for lab_prefix, prefix in LAB_PREFIXES.items():
        theirs = [(k, v) for k, v in sd.items() if k.startswith(lab_prefix)]
        mine = [(k, v) for k, v in ours.items() if k.startswith(prefix)]
        if len(theirs) != len(mine):
            raise CheckpointError(f"lab checkpoint module {lab_prefix.rstrip('.')} has {len(theirs)} "
                                  f"tensors, posecast's {prefix.rstrip('.')} has {len(mine)}")
        for (tk, tv), (mk, mv) in zip(theirs, mine):
            if tv.shape != mv.shape:
                raise CheckpointError(f"lab tensor {tk} {tuple(tv.shape)} does not fit {mk} {tuple(mv.shape)}")
            out[mk] = tv
    missing = set(ours) - set(out)
    if missing:
        raise CheckpointError(f"lab checkpoint lacks tensors for {sorted(missing)[:5]}")
    return out
