"""`python -m posecast.cli ...`: the same as the `posecast` command (the distributed launch re-runs it so)."""
from . import main

if __name__ == "__main__":
    raise SystemExit(main())
