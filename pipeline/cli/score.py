"""`migue score`: score prediction files against annotations, without a run or a cache."""
from __future__ import annotations

import json
from pathlib import Path

import click

MATCHING = ("strict", "kit")  # fusion/online/score.py's rules, named here so that --help imports no fusion


@click.group()
def score() -> None:
    """Score prediction files against annotation files."""


@score.command("online")
@click.option("--pred", "pred", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Predicted gestures: CSV video_id,label,start,end[,score].")
@click.option("--truth", "truth", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Annotated gestures: CSV video_id,label,start,end.")
@click.option("--iou", type=click.FloatRange(0, 1, max_open=True), default=0.3, show_default=True,
              help="A prediction counts when its tIoU with a truth of its video and label is above this.")
@click.option("--matching", type=click.Choice(MATCHING), default="strict", show_default=True,
              help="strict: one truth per prediction, best score first | kit: the SMG starter kit's rule "
                   "(each truth takes the first qualifying prediction in file order; predictions are reused).")
def score_online(pred: Path, truth: Path, iou: float, matching: str) -> None:
    """F1 of online (MiGA Track 2) gesture predictions: per class, then overall; mAP at tIoU 0.3:0.1:0.7
    as a second view. The last line is JSON: precision, recall, f1, matched, predictions, truths."""
    from migue.fusion.online.files import read_segments
    from migue.fusion.online.score import mean_average_precision, metrics_table, score_segments

    predictions, truths = read_segments(pred), read_segments(truth)
    result = score_segments(predictions, truths, iou, matching)
    click.echo(metrics_table(result))
    mean_ap = mean_average_precision(predictions, truths)
    click.echo("mAP " + " ".join(f"@{t:g} {v:.4f}" for t, v in mean_ap["by_iou"].items())
               + f"  mean {mean_ap['mAP']:.4f}" + ("" if any(p.score is not None for p in predictions)
                                                 else "  (no scores: ranked in file order)"))
    click.echo(f"matching {matching}, tIoU > {iou:g}, pooled over "
               f"{len({s.video_id for s in (*predictions, *truths)})} sequence(s)")
    keys = ("precision", "recall", "f1", "matched", "predictions", "truths")
    click.echo(json.dumps({**{k: result[k] for k in keys}, "iou": iou, "matching": matching}))
