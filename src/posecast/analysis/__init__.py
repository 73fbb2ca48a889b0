"""Analysis: metrics, baselines, per-frame tables, plots, reports, videos, the evaluate command's
outputs and studies. Loading and rolling out models is :mod:`posecast.inference`.
"""
