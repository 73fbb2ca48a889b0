"""Inference: load a model (posecast or lab checkpoint), roll it out, predict files, animate.

``load`` (load_model, the lab's key mapping), ``rollout`` (predict, evaluate_sequences),
``predict`` (predict_files: PNG folders, GIF, submission.csv), ``animate`` (a person from a
photo performing driving poses). Scoring, plots, reports and videos are in
:mod:`posecast.analysis`.
"""
