"""Estimate the MediaPipe Holistic pose of every frame of a video into a `.pose` file.

    python utils/estimate_pose.py --video=signer.mp4 --output=signer.pose

A thin command over `utils.pose_estimation.estimate_video_pose` (pose-format's Holistic utilities;
needs the `pose` extra). The file is written atomically; `--skip-existing` makes batch scripts
re-runnable.
"""

from __future__ import annotations

import logging
import os
import sys

import click

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dnnlib  # noqa: E402
from utils.pose_estimation import estimate_video_pose  # noqa: E402


@click.command()
@click.option("--video", help="Video of the signer", metavar="FILE", required=True)
@click.option("--output", help="Pose file to write (.pose)", metavar="FILE", required=True)
@click.option("--skip-existing", help="Do nothing when --output exists", is_flag=True)
@dnnlib.util.cli_main
def main(video: str, output: str, skip_existing: bool) -> None:
    """Estimate the Holistic pose of every frame of a video."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pose = estimate_video_pose(video, output, skip_existing=skip_existing)
    print(f"Wrote {pose.body.data.shape[0]} frames at {pose.body.fps:g} fps to {output}")


if __name__ == "__main__":
    main()
