"""Pure nn.Modules: blocks, encoders, Gaussian predictor, fusion decoder, generator, PoseCVAE."""
from .cvae import CVAEOutput, PoseCVAE
from .modules import FrameEncoder, FusionDecoder, Gaussian, GaussianPredictor, Generator, PoseEncoder

__all__ = ["CVAEOutput", "PoseCVAE", "FrameEncoder", "FusionDecoder", "Gaussian",
           "GaussianPredictor", "Generator", "PoseEncoder"]
