"""Inference on trained models: animate a person from a photo and driving poses
(:mod:`posecast.inference.animate`)."""
