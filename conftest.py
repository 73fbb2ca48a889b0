"""Test-session settings: keep CPU thread use predictable on the 2-core machines."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
