"""Inference: load a model (posecast or lab checkpoint), roll it out, predict files.

``load`` (load_model, the lab's key mapping), ``rollout`` (predict, evaluate_sequences),
``predict`` (predict_files: PNG folders, GIF, submission.csv). Scoring, plots, reports and
videos are in :mod:`posecast.analysis`.
"""
