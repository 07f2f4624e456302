"""Estimate the MediaPipe Holistic pose of every frame of a video into a `.pose` file.

    python utils/estimate_pose.py --video=signer.mp4 --output=signer.pose
    python utils/estimate_pose.py --video=videos/ --output=poses/    # name.pose for each video

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
from utils.pose_estimation import estimate_folder_poses, estimate_video_pose, raise_for_failures  # noqa: E402


@click.command()
@click.option("--video", help="Video of the signer, or a folder of videos", metavar="FILE|DIR", required=True)
@click.option("--output", help="Pose file to write (.pose); a folder when --video is one", metavar="FILE|DIR",
              required=True)
@click.option("--skip-existing", help="Do nothing when --output exists (a folder always keeps existing poses)",
              is_flag=True)
@dnnlib.util.cli_main
def main(video: str, output: str, skip_existing: bool) -> None:
    """Estimate the Holistic pose of every frame of a video (or of each video in a folder)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if os.path.isdir(video):
        if os.path.splitext(output)[1].lower() == ".pose":
            raise dnnlib.UserError(f"--video is a folder, so --output must be a folder for the poses, not {output}")
        res = estimate_folder_poses(video, output)
        click.echo(f"{output}: wrote {len(res['written'])} poses, kept {len(res['kept'])} from an earlier run"
                   + (f", {len(res['failed'])} failed" if res["failed"] else ""))
        raise_for_failures(res)
        return
    if os.path.isdir(output) or output.endswith(("/", os.sep)):  # a folder for the pose: name.pose in it
        output = os.path.join(output, os.path.splitext(os.path.basename(video))[0] + ".pose")
    if os.path.splitext(output)[1].lower() != ".pose":
        raise dnnlib.UserError(f"--output {output}: a pose file's name ends in .pose")
    if os.path.exists(output) and os.path.exists(video) and os.path.samefile(video, output):
        raise dnnlib.UserError(f"--output {output} is the video itself; choose another name")
    kept = skip_existing and os.path.isfile(output)
    pose = estimate_video_pose(video, output, skip_existing=skip_existing)
    click.echo(f"{'Kept' if kept else 'Wrote'} {pose.body.data.shape[0]} frames at {pose.body.fps:g} fps "
               f"{'in' if kept else 'to'} {output}")


if __name__ == "__main__":
    main()
