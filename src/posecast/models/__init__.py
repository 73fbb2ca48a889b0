"""Pure nn.Modules: blocks, encoders, Gaussian predictor, fusion decoder, generator, PoseCVAE."""
from .cvae import CVAEOutput, PoseCVAE
from .objective import LossOutput
from .modules import FrameEncoder, FusionDecoder, Gaussian, GaussianPredictor, Generator, PoseEncoder

__all__ = ["CVAEOutput", "LossOutput", "PoseCVAE", "FrameEncoder", "FusionDecoder", "Gaussian",
           "GaussianPredictor", "Generator", "PoseEncoder"]
