"""`chatbot train`, `chatbot eval`, `chatbot models list|promote|rollback|shadow`, `chatbot nightly`, `chatbot distill`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from chatbot.cli import CliError, app, echo_json, get_settings

models_app = typer.Typer(help="Model registry: list versions, promote one, roll back, shadow one.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

DATA_HELP = "'db' (the store's export) or FORMAT:PATH, e.g. sgd:../shared/data/sgd/train. Repeatable."


@contextmanager
def _clear_errors() -> Iterator[None]:
    """Expected failures (bad data, bad config, no model, database down) as one line, exit status 1."""
    from chatbot.model.checkpoint import CheckpointError
    from chatbot.store.db import StoreError
    from training.sources import SourceError
    from training.train import TrainError

    try:
        yield
    except (SourceError, TrainError, CheckpointError, StoreError, FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _store(settings: Any) -> Any:
    from chatbot.store.manager import ConversationStore

    return ConversationStore(settings)


def load_specs(specs: list[str], settings: Any, max_turns: int,
               manifest: dict[str, Any] | None = None, grouped: bool = False) -> list[Any]:
    """Pairs of every --data spec (one list per spec when ``grouped``); opens the store only for ``db``."""
    from training.sources import load_groups, load_pairs

    load = load_groups if grouped else load_pairs
    if "db" not in specs:
        return load(specs, max_turns, manifest=manifest)
    with _store(settings) as store:
        return load(specs, max_turns, store=store, manifest=manifest)


def _report_interrupted(exc: Any) -> None:
    """Ctrl-C / SIGTERM during `chatbot train`: say where it stopped and how to continue; exit 128 + signal."""
    import shlex
    import sys

    argv = ["chatbot", *sys.argv[1:]]
    again = shlex.join(argv if "--resume" in argv else [*argv, "--resume"])
    typer.echo(f"{exc}\ncontinue where it stopped (step {exc.step}) with: {again}", err=True)
    raise typer.Exit(exc.exit_code)


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    data: list[str] = typer.Option([], "--data", help=DATA_HELP + " Default: the recipe's [[data]] tables."),
    out: Path = typer.Option(..., "--out", help="Output directory (metrics, plots, checkpoints, model/)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Training config TOML (TrainConfig fields)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", min=0.01, help="Stop (and save) after M minutes."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Fine-tune: start from this model "
                                             "directory's weights and vocabulary instead of a new model."),
    new_words: int = typer.Option(0, "--new-words", min=0, help="With --init-from: add up to N words the data "
                                  "uses that the model's vocabulary lacks (training/vocab_growth.py)."),
    new_word_conversations: int = typer.Option(2, "--new-word-conversations", min=1, help="Distinct "
                                               "conversations that must use a word before --new-words adds it."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a seq2seq model on one or more data sources (--data, or the recipe's weighted data mix)."""
    from training.sources import Source, split_dev, weighted
    from training.train import TrainConfig, TrainingInterrupted, decoding_of, train

    settings = get_settings(ctx)
    with _clear_errors():
        cfg = TrainConfig.from_toml(config)
        if init_from is not None and not (init_from / "config.json").is_file():
            raise CliError(f"--init-from {init_from}: not a model directory (no config.json)")
        if new_words and init_from is None:
            raise CliError("--new-words grows the vocabulary of the --init-from model; pass --init-from")
        sources = [Source(spec) for spec in data] or [Source(e.spec, e.weight) for e in cfg.data]
        if not sources:
            raise CliError("no training data: pass --data SPEC or a --config recipe with [[data]] tables")
        manifest: dict[str, Any] = {}
        groups = load_specs([s.spec for s in sources], settings, cfg.max_turns, manifest, grouped=True)
        train_pairs, dev_pairs = [], []
        for source, pairs in zip(sources, groups):
            part_train, part_dev = split_dev(pairs, cfg.dev_fraction)
            train_pairs += weighted(part_train, source.weight)
            dev_pairs += part_dev
        manifest.update(train_pairs=len(train_pairs), dev_pairs=len(dev_pairs),
                        weights={s.spec: s.weight for s in sources})
        typer.echo(f"{len(train_pairs)} training pairs, {len(dev_pairs)} dev pairs", err=True)
        if new_words and not resume:  # a resumed run continues from its own saved vocabulary
            from training.vocab_growth import answer_word_ids, first_new_word, grow_checkpoint

            init_from, added = grow_checkpoint(init_from, train_pairs, out / "base", limit=new_words,
                                               min_conversations=new_word_conversations)
            manifest["words_added"] = added
            if added:  # the config's new_word_lr_scale and answer_word_lr_scale apply to these rows
                cfg = cfg.model_copy(update={"new_words_from": first_new_word(init_from, added),
                                             "answer_words": answer_word_ids(init_from)})
            typer.echo(f"{added} words added to the vocabulary of the --init-from model", err=True)
        try:
            result = train(train_pairs, dev_pairs, out, cfg, resume=resume, max_minutes=max_minutes,
                           init_from=init_from, threads=settings.torch_threads, decoding=decoding_of(settings), manifest=manifest,
                           handle_signals=True)
        except TrainingInterrupted as exc:
            _report_interrupted(exc)
    if as_json:
        echo_json(result.to_dict())
    else:
        typer.echo(f"trained {result.steps} steps ({result.stopped}); model in {result.model_dir}; "
                   f"best dev loss {result.best_dev_loss}")


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", help="Model directory (a checkpoint, e.g. OUT/model)."),
    data: list[str] = typer.Option(..., "--data", help=DATA_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate N pairs of each --data spec, "
                                        "spread evenly over it (a fixed spread, the same every run)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write per-example rows to this CSV file."),
) -> None:
    """Generate replies and report BLEU, chrF, ROUGE-L, METEOR, distinct-n, perplexity, entity copying.

    Several --data specs in several languages (sgd:...dev and crosswoz:...@dev) are scored in one run,
    each language on its own as well as together."""
    from training.evaluate import evaluate_model
    from training.sources import spread

    settings = get_settings(ctx)
    with _clear_errors():
        groups = load_specs(data, settings, settings.context_turns, grouped=True)
        pairs = [p for group in groups for p in (spread(group, limit) if limit else group)]
        report = evaluate_model(model, pairs, settings)
    if out is not None:
        report.write_csv(out)
    if as_json:
        echo_json(report.metrics)
        return
    by_language = report.metrics.get("by_language") or {}
    columns = {"all": report.metrics, **by_language} if by_language else {"": report.metrics}
    if by_language:
        typer.echo(f"{'':>20}" + "".join(f"{name:>12}" for name in columns))
    for key, value in report.metrics.items():
        if key in ("by_language", "decoding"):
            continue
        cells = [column.get(key) for column in columns.values()]
        typer.echo(f"{key:>20}" + "".join(f"{c:>12.4f}" if isinstance(c, float) else f"{str(c):>12}" for c in cells))
    decoding = report.metrics["decoding"]
    typer.echo("decoding: " + ", ".join(f"{k}={v}" for k, v in decoding.items() if k not in ("bos_token_id",
                                                                                            "eos_token_id")))


def _version_row(v: Any) -> dict[str, Any]:
    return {"id": v.id, "name": v.name, "status": v.status, "path": v.path, "created_at": v.created_at,
            "promoted_at": v.promoted_at, "metrics": v.metrics, "notes": v.notes, "shadowed_at": v.shadowed_at}


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Registered model versions, newest first."""
    from chatbot.store import registry

    with _clear_errors(), _store(get_settings(ctx)) as store, store.transaction(read_only=True) as s:
        rows = [_version_row(v) for v in registry.list_versions(s)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        typer.echo("no model versions registered")
    for r in rows:
        chrf = (r["metrics"] or {}).get("chrf")
        typer.echo(f"{r['id']:>4}  {r['status']:<9}  {r['name']:<32}  chrF={chrf if chrf is not None else '-'}  {r['path']}")


@models_app.command("register")
def models_register(
    ctx: typer.Context,
    model: Path = typer.Argument(..., help="Checkpoint directory (e.g. OUT/model from chatbot train)."),
    name: Optional[str] = typer.Option(None, "--name", help="Unique version name (default: the directory's)."),
    notes: Optional[str] = typer.Option(None, "--notes", help="Free text shown in `models list`."),
    as_json: bool = typer.Option(False, "--json", help="Print the new version as JSON."),
) -> None:
    """Register a trained checkpoint as a candidate version (load-checked first; promote it afterwards)."""
    from chatbot.model.checkpoint import load_checkpoint
    from chatbot.store import registry

    with _clear_errors():
        loaded = load_checkpoint(model)  # refuses a corrupt or foreign directory before it reaches the registry
        directory = model.resolve()
        with _store(get_settings(ctx)) as store, store.transaction() as s:
            v = registry.register(s, name or f"{directory.parent.name}/{directory.name}", str(directory),
                                  manifest=loaded.config.get("manifest") or None,
                                  metrics=loaded.config.get("metrics") or None, notes=notes)
            row = _version_row(v)
    if as_json:
        echo_json(row)
    else:
        typer.echo(f"registered model version {row['id']} ({row['name']}) as a candidate")


@models_app.command("promote")
def models_promote(ctx: typer.Context, version_id: int = typer.Argument(..., help="Model version id.")) -> None:
    """Make a version active by hand (the previous active one is retired), once it loads and answers a
    few conversations with finite scores (a truncated or NaN-weight version is refused, nothing changes)."""
    from chatbot.service.models import check_servable, version_ref
    from chatbot.store import registry

    settings = get_settings(ctx)
    with _clear_errors(), _store(settings) as store:
        check_servable(version_ref(store, version_id), settings)
        with store.transaction() as s:
            v = registry.promote(s, version_id, reason="manual (chatbot models promote)")
            typer.echo(f"model version {v.id} ({v.name}) is now active")


@models_app.command("shadow")
def models_shadow(
    ctx: typer.Context,
    version_id: Optional[int] = typer.Argument(None, help="Model version id to shadow the active model with."),
    off: bool = typer.Option(False, "--off", help="Stop shadowing (no version answers in the background)."),
) -> None:
    """Let a registered version answer a sample of live messages in the background, never sent (see /admin)."""
    from chatbot.store import shadow

    if off == (version_id is not None):
        raise typer.BadParameter("give a version id, or --off")
    with _clear_errors(), _store(get_settings(ctx)) as store, store.transaction() as s:
        v = shadow.set_shadow(s, version_id)
        share = get_settings(ctx).shadow_share
        typer.echo("shadow testing is off" if v is None else
                   f"model version {v.id} ({v.name}) shadows the active model on {share:.0%} of live messages")


@models_app.command("rollback")
def models_rollback(ctx: typer.Context) -> None:
    """Re-activate the version that served before the active one (promotion history), once it passes the
    same load and smoke test as a promotion."""
    from chatbot.service.models import check_servable, ref_of
    from chatbot.store import registry

    settings = get_settings(ctx)
    with _clear_errors(), _store(settings) as store:
        with store.transaction(read_only=True) as s:
            target = ref_of(registry.rollback_target(s))
        check_servable(target, settings)
        with store.transaction() as s:
            v = registry.rollback(s)
            typer.echo(f"rolled back: model version {v.id} ({v.name}) is active again")


@app.command("nightly")
def nightly_cmd(
    ctx: typer.Context,
    full: bool = typer.Option(False, "--full", help="Train from scratch instead of fine-tuning the active model."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Export new transcripts, fine-tune, evaluate, gate, and promote or reject (one run at a time)."""
    from training.nightly import NightlyError, run_nightly

    settings = get_settings(ctx)
    try:
        with _clear_errors():
            report = run_nightly(settings, full=full)
    except NightlyError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json(report)
    else:
        typer.echo(f"nightly {report['decision']}: {report.get('summary', '')}; report in {report['report_dir']}")


@app.command("distill")
def distill_cmd(
    ctx: typer.Context,
    teacher: Path = typer.Option(..., "--teacher", help="Teacher model directory."),
    out: Path = typer.Option(..., "--out", help="Output directory for the student run."),
    data: list[str] = typer.Option(..., "--data", help="Contexts to distil on. " + DATA_HELP),
    size: str = typer.Option("small", "--size", help="Student size: tiny or small."),
    eval_limit: int = typer.Option(200, "--eval-limit", min=1, help="Dev pairs used to compare teacher and student."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", min=0.01, help="Student training time limit."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Train a smaller student on the teacher's beam-search replies (sequence-level distillation)."""
    from training.distill import distill

    settings = get_settings(ctx)
    with _clear_errors():
        pairs = load_specs(data, settings, settings.context_turns)
        report = distill(teacher, out, pairs, settings, size=size, eval_limit=eval_limit, max_minutes=max_minutes)
    if as_json:
        echo_json(report)
    else:
        for who in ("teacher", "student"):
            r = report[who]
            typer.echo(f"{who}: {r['parameters']:,} params, {r['size_mb']:.1f} MB, {r['replies_per_s']:.1f} replies/s, "
                       f"chrF {r['chrf']:.2f}, BLEU {r['bleu']:.2f}")
