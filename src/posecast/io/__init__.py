"""Files in and out, at the bottom layer with config and metrics: atomic writes (``atomic``), the
checkpoint format (``checkpoint``), frames out as GIF, MP4, PNG folders and the lab's submission
CSV (``video``). It imports no other posecast package."""
