"""Train the pose-to-latent LSTM on (pose, W) pairs made by `utils/make_animations.py`.

    python train_pose_lstm.py --pairs=pairs --network=G.pkl --outdir=lstm-run [--steps=20000] \\
        [--val=real-poses] [--augment-with-validation]
    python train_pose_lstm.py --outdir=lstm-run --resume --steps=40000   # continue a run with its own options

Writes `<outdir>/lstm.pt` (latest state: resumes exactly with `--resume`, and is what
`gen_video.py --lstm` reads), `<outdir>/lstm-best.pt` (lowest validation MAE, or with
`--best-by=consistency` the best pose consistency), `stats.jsonl`, TensorBoard logs and
`preview-<step>.png` with each validation (poses next to G's renders of the LSTM's latents). See
`training/pose_lstm.py`.
"""

from __future__ import annotations

import logging

import click

import dnnlib

#----------------------------------------------------------------------------

@click.command()
@click.option("--pairs", metavar="DIR", help="Folder of name.pose + name.npy pairs  [at --resume: the run's]")
@click.option("--network", metavar="PATH|URL", help="The generator the pairs were made with  [at --resume: the run's]")
@click.option("--outdir", required=True, metavar="DIR", help="Where to write the checkpoint and logs")
@click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True, help="Training steps (total)")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Windows per step")
@click.option("--hidden", type=click.IntRange(min=1), default=512, show_default=True, help="Width of the LSTMs")
@click.option("--layers", "num_layers", type=click.IntRange(min=1), default=4, show_default=True,
              help="Stacked LSTMs")
@click.option("--window", type=click.IntRange(min=1), default=64, show_default=True, help="Frames per window")
@click.option("--lr", type=dnnlib.util.finite_float(), default=1e-3, show_default=True, help="Adam learning rate")
@click.option("--out", "out_mode", type=click.Choice(["w", "ws"]), default="w", show_default=True,
              help="Predict one W for all layers (w) or one per layer (ws)")
@click.option("--val-fraction", type=dnnlib.util.finite_float(min=0, max=1, max_open=True), default=0.1,
              show_default=True, help="Pairs held out for validation (0: none)")
@click.option("--val-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Steps between validations (and checkpoints)")
@click.option("--val", metavar="DIR", default=None, help="Real poses: render them and measure pose consistency")
@click.option("--val-frames", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many frames of each real pose")
@click.option("--augment-with-validation", is_flag=True,
              help="Add the renders of the real poses (re-estimated) to the training pairs")
@click.option("--best-by", type=click.Choice(["val_mae", "consistency"]), default="val_mae", show_default=True,
              help="What lstm-best.pt minimises: W error on held-out pairs, or pose consistency of the --val renders "
                   "(parts MediaPipe misses count as one shoulder width)")
@click.option("--render-batch", type=click.IntRange(min=1), default=4, show_default=True,
              help="Frames per synthesis call when rendering validation poses")
@click.option("--preview-frames", type=click.IntRange(min=0), default=8, show_default=True,
              help="Frames shown in preview-<step>.png, written with each validation (0: none)")
@click.option("--resume", is_flag=True, help="Continue the run in --outdir from its lstm.pt, with its options "
              "(a different --best-by is taken, and so are --pairs, --val and --network where the run's have "
              "moved; other run options given are kept from the run, with a warning)")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")
@click.pass_context
@dnnlib.util.cli_main
def main(ctx: click.Context, **kwargs) -> None:
    """Train a pose-to-latent LSTM for a generator.

    \b
    python train_pose_lstm.py --pairs=pairs --network=G.pkl --outdir=lstm-run
    python train_pose_lstm.py --outdir=lstm-run --resume --steps=40000"""
    from training.pose_lstm import TrainOptions, train_pose_lstm
    given = frozenset(name for name in kwargs
                      if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None))
    result = train_pose_lstm(TrainOptions(**kwargs, given=given))
    if result.get("nothing_to_do"):
        click.echo(f"Nothing to do: {result['checkpoint']} is at step {result['step']}; raise --steps to train on")
        return
    if "val_mae" in result:
        click.echo(f"Step {result['step']}: validation MAE {result['val_mae']:.4f} "
                   f"(mean predictor {result['val_mean_predictor_mae']:.4f})")
    click.echo(f"Wrote {result['checkpoint']}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()

#----------------------------------------------------------------------------
