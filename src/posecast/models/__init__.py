"""Pure nn.Modules: PoseCVAE (the time-step logic), one file per architecture (default.py, lab.py,
unet.py, each with ``build(cfg)``), the shared blocks and parts, the output modes, the objective,
and reference.py, the loss written one step at a time (the specification to read first)."""
from .cvae import ARCHS, CVAEOutput, PoseCVAE
from .default import FrameEncoder, FusionDecoder, Generator, PoseEncoder
from .objective import LossOutput, Objective
from .parts import CVAEModules, Gaussian, GaussianPredictor

__all__ = ["ARCHS", "CVAEModules", "CVAEOutput", "LossOutput", "Objective", "PoseCVAE", "FrameEncoder",
           "FusionDecoder", "Gaussian", "GaussianPredictor", "Generator", "PoseEncoder"]
