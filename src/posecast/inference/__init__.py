"""Inference: load a model (posecast or lab checkpoint), predict files, animate.

``load`` (load_model, the lab's key mapping), ``predict`` (predict_files: PNG folders, GIF,
submission.csv), ``animate`` (a person from a photo performing driving poses: the own-video
workflow, a layer above the rest of this package). The rollout itself is :mod:`posecast.rollout`,
which training uses too; scoring, plots and reports are in :mod:`posecast.analysis`.
"""
