"""Analysis: baselines, plots, reports, the evaluate command's outputs and studies, from run
folders (:class:`posecast.training.run.Run`) and checkpoints. PSNR/SSIM are :mod:`posecast.metrics`,
the rollout :mod:`posecast.rollout`, frames out :mod:`posecast.io.video`.
"""
