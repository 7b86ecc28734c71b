"""``ampel classifiers``: train a classifier from a config, list and show the shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["classifiers"]


@click.group()
def classifiers() -> None:
    """Train light-curve classifiers and inspect the shipped ones (see docs/classifier-training.md)."""


@classifiers.command("train")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write the model folder into (default: the config's `output`, relative to it).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Processes (default: 2 or fewer cores).")
def train_command(config: Path, output: Path | None, workers: int | None) -> None:
    """Simulate light curves, train, calibrate and evaluate the classifier CONFIG (YAML) describes."""
    from ampel_classifiers.train import load_config, train

    classifier = train(load_config(config), output, workers, log=click.echo)
    full = classifier.card.metrics.get("full", {})
    infant = classifier.card.metrics.get("infant", {}).get("sn_ia_at_fpr_0.10", {})
    click.echo(f"{classifier.card.name}: full-light-curve macro-F1 {full.get('macro_f1', 'n/a')}, "
               f"SN Ia AUC {full.get('sn_ia_auc', 'n/a')}, infant SN Ia completeness at <=10 % FPR "
               f"{infant.get('completeness', 'n/a')}")


@classifiers.command("list")
def list_command() -> None:
    """The models shipped with ampel-plugin-classifiers: name, version, goal, survey, digest."""
    from ampel_classifiers.model import load_classifier, shipped_model, shipped_models

    for name in shipped_models():
        classifier = load_classifier(shipped_model(name))
        card = classifier.card
        click.echo(f"{name}\t{card.version}\t{card.goal}\t{card.survey}\t{len(card.taxonomy)} classes\t"
                   f"{classifier.digest[:12]}")


@classifiers.command("info")
@click.argument("name")
def info_command(name: str) -> None:
    """The model card of the shipped model NAME (or of a model folder NAME), as JSON."""
    from ampel_classifiers.model import load_classifier, shipped_model

    folder = Path(name) if Path(name).is_dir() else shipped_model(name)
    classifier = load_classifier(folder)
    card = classifier.card.model_dump(mode="json")
    click.echo(json.dumps({"digest": classifier.digest, **card}, indent=1))
