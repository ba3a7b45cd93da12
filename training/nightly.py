"""Nightly retraining: export -> fine-tune -> evaluate -> gate -> promote or reject -> report.

One run at a time: the job row is the lock (``chatbot.store.jobs``), refreshed by a heartbeat thread
while training runs. A run killed halfway leaves its work directory and progress in its job row; the
next run takes over the stale lock and continues in the same directory (training resumes from its
last checkpoint, an already registered candidate is not registered twice). The report (JSON and
Markdown) goes to the job row and to the work directory.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.files import private_dir, write_private_text
from chatbot.settings import Settings
from training.sources import Pair

if TYPE_CHECKING:
    from chatbot.text.taught import TaughtAnswers

KIND = "nightly"
HEARTBEAT_S = 20.0


class NightlyError(RuntimeError):
    """The nightly run could not complete; the message says why (also stored in the job row)."""


class _Heartbeat(threading.Thread):
    """Refresh the job's heartbeat in its own short transactions while the main thread works."""

    def __init__(self, store: Any, job_id: int, every_s: float) -> None:
        super().__init__(daemon=True, name="nightly-heartbeat")
        self.store, self.job_id, self.every_s = store, job_id, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        from chatbot.store import jobs

        while not self.stopped.wait(self.every_s):
            try:
                with self.store.transaction() as s:
                    jobs.heartbeat(s, self.job_id)
            except Exception:  # a missed beat is retried; the stale limit is many beats long
                continue

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def _progress(store: Any, job_id: int, /, **progress: Any) -> None:
    from chatbot.store import jobs

    with store.transaction() as s:
        jobs.heartbeat(s, job_id, progress)


def run_nightly(settings: Settings, *, full: bool = False, progress: bool = False) -> dict[str, Any]:
    """Run one nightly job; returns the report, raises NightlyError (after recording it) on failure."""
    from chatbot.store import jobs
    from chatbot.store.manager import ConversationStore

    with ConversationStore(settings) as store:
        try:
            with store.transaction() as s:
                job, stale = jobs.acquire(s, KIND, settings.nightly_stale_lock_s)
                job_id = job.id
                resumed = dict(stale.report or {}) if stale is not None else {}
                last = jobs.last_succeeded(s, KIND)
                since = last.started_at if last is not None else None
        except jobs.JobLocked as exc:
            raise NightlyError(str(exc)) from None
        if resumed.get("workdir") and resumed.get("full", False) == full:
            workdir = Path(resumed["workdir"])
        else:
            resumed = {}
            workdir = settings.effective_nightly_dir / f"job-{job_id}"
        beat = _Heartbeat(store, job_id, HEARTBEAT_S)
        beat.start()
        try:
            private_dir(workdir)  # exports and reports hold customer text: owner-only (chatbot.files)
            _progress(store, job_id, workdir=str(workdir), full=full, since=since.isoformat() if since else None,
                      resumed_from=resumed.get("job_id"), job_id=job_id)
            report = _run(store, settings, job_id, workdir, full, since, resumed, progress)
        except BaseException as exc:
            beat.stop()
            message = str(exc) or type(exc).__name__
            with store.transaction() as s:
                jobs.finish(s, job_id, "failed", {"phase": "failed"}, error=message)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise NightlyError(f"nightly job {job_id} failed: {message}") from exc
        beat.stop()
        status = "skipped" if report["decision"] == "skipped" else "succeeded"
        with store.transaction() as s:
            jobs.finish(s, job_id, status, report)
        return report


def _run(store: Any, settings: Settings, job_id: int, workdir: Path, full: bool, since: datetime | None,
         resumed: dict[str, Any], progress: bool) -> dict[str, Any]:
    from chatbot.store import registry
    from training.gate import run_gate
    from training.sources import db_pairs, is_dev, load_pairs
    from training.train import STATE_FILE, TrainConfig, decoding_of, train

    started = datetime.now().astimezone()
    with store.transaction(read_only=True) as s:
        active = registry.active_version(s)
        active_info = {"id": active.id, "name": active.name, "path": active.path} if active else None
    if active is None and not full:
        raise NightlyError("no active model to fine-tune; run `chatbot nightly --full` to train one from scratch "
                           "or promote a version with `chatbot models promote ID`")
    cfg = TrainConfig.from_toml(None, **{
        **_defaults(settings, full), **_window(None if full else Path(active.path), settings),
        **_toml(settings.nightly_train_config), "dev_fraction": settings.nightly_dev_fraction})
    new_pairs, manifest = db_pairs(store, cfg.max_turns, since=None if full else since)
    from chatbot.store.files import record_written

    with store.transaction() as s:  # the work directory holds what was trained on them: erasure finds it
        record_written(s, "nightly", workdir, manifest.get("customer_hashes") or [])
    all_pairs = new_pairs if full or since is None else db_pairs(store, cfg.max_turns)[0]
    heldout_corrections = held_out_corrections(all_pairs, settings.nightly_correction_holdout)
    held = {_key(p) for p in heldout_corrections}
    trainable = [p for p in new_pairs if not is_dev(p, cfg.dev_fraction) and _key(p) not in held]
    corrections = [p for p in trainable if p.meta.get("kind") == "corrected"]
    new_train = trainable + corrections * (settings.nightly_correction_repeat - 1)
    heldout = [p for p in all_pairs if is_dev(p, cfg.dev_fraction) and p.meta.get("kind") != "corrected"]
    heldout = heldout[: settings.nightly_eval_limit]
    extra_eval = [p for spec in settings.nightly_eval_data
                  for p in load_pairs([spec], cfg.max_turns)[: settings.nightly_eval_limit]]
    new_keys = {_key(p) for p in new_pairs}
    train_part = [p for p in all_pairs if _key(p) not in held and not is_dev(p, cfg.dev_fraction)]
    replay = [] if full else replay_sample(
        [p for p in train_part if _key(p) not in new_keys],
        replay_corpora(settings, cfg.max_turns),
        replay_size(len(new_train), settings, cfg), seed=job_id,
        corrected=[p for p in all_pairs if p.meta.get("kind") == "corrected"])
    counts = {"exported_pairs": len(new_pairs), "exported_conversations": manifest.get("conversations", 0),
              "train_pairs": len(trainable), "corrections_trained": len({_key(p) for p in corrections}),
              "replay_pairs": len(replay), "heldout_pairs": len(heldout), "extra_eval_pairs": len(extra_eval),
              "heldout_corrections": len(heldout_corrections)}
    report: dict[str, Any] = {"job_id": job_id, "started_at": started.isoformat(), "full": full,
                              "since": since.isoformat() if since else None, "data": counts,
                              "active_before": active_info, "report_dir": str(workdir),
                              "context": {"turns": cfg.max_turns, "max_tokens": cfg.max_src_tokens}}
    if not trainable:
        report.update(decision="skipped", summary=f"no new training pairs since {report['since'] or 'the start'}")
        return _write_report(workdir, report)
    eval_pairs = heldout + extra_eval
    if not eval_pairs:
        raise NightlyError("the evaluation set is empty: no held-out reviewed transcripts and no "
                           "nightly_eval_data configured")

    base = None if full else Path(active.path)
    if base is not None and settings.nightly_new_words:
        from training.vocab_growth import answer_word_ids, first_new_word, grow_checkpoint

        base, report["data"]["words_added"] = grow_checkpoint(
            base, train_part, workdir / "base", limit=settings.nightly_new_words,
            min_conversations=settings.nightly_new_word_conversations,
            answer_words_from_questions=settings.nightly_answer_words_from_questions, background=replay[:5000])
        if report["data"]["words_added"]:
            cfg = cfg.model_copy(update={"new_words_from": first_new_word(base, report["data"]["words_added"]),
                                         "new_word_lr_scale": settings.nightly_new_word_lr_scale,
                                         "answer_words": answer_word_ids(base),
                                         "answer_word_lr_scale": settings.nightly_answer_word_lr_scale})
    train_dir = workdir / "train"
    _progress(store, job_id, phase="train")
    # Checkpoints are chosen on the general dev sample and the held-out corrections together, the corrections
    # repeated to weigh as much: the lowest general loss alone picks the step before anything was learned. The
    # general sample is the gate's general set (held-out transcripts, then nightly_eval_data): a store of
    # corrections alone has no held-out transcripts, and the corrections alone would choose the checkpoint.
    general = eval_pairs[:200]
    select = general + heldout_corrections * max(1, len(general) // max(len(heldout_corrections), 1))
    result = train(new_train + replay, select, train_dir, cfg, resume=(train_dir / STATE_FILE).exists(),
                   max_minutes=settings.nightly_max_minutes, init_from=base,
                   threads=settings.torch_threads, progress=progress, decoding=decoding_of(settings))
    report["training"] = result.to_dict()
    # What agents taught, beside the weights: serving prefers a taught answer among the model's candidates for
    # questions like the ones it was taught for (chatbot.text.taught). Held-out corrections stay out.
    taught = taught_answers([p for p in train_part if p.meta.get("kind") == "corrected"], replay)
    if len(taught):
        from chatbot.text.taught import save_taught

        save_taught(taught, result.model_dir)
    report["data"]["taught_answers"] = len(taught)

    candidate_id = resumed.get("candidate_id")
    if candidate_id is None:
        with store.transaction() as s:
            v = registry.register(s, f"nightly-{job_id}-{started:%Y%m%d-%H%M}", str(result.model_dir),
                                  manifest={"export": manifest, "training": result.to_dict(), "job_id": job_id})
            v.parent_id = None if full or active is None else active.id  # lineage: erasure follows it
            candidate_id = v.id
    _progress(store, job_id, phase="gate", candidate_id=candidate_id)

    decision = run_gate(result.model_dir, Path(active.path) if active else None, eval_pairs, heldout_corrections,
                        settings, progress=progress, corrections_trained=counts["corrections_trained"],
                        taught=[p.reply for p in corrections])
    with store.transaction() as s:
        registry.set_metrics(s, candidate_id, {**decision.candidate, "gate": decision.to_dict()})
        if decision.accepted:
            registry.promote(s, candidate_id, reason=f"nightly job {job_id} passed the gate")
        elif decision.verdict == "reject":
            registry.reject(s, candidate_id, decision.reasons)
    outcome = {"promote": "promoted", "reject": "rejected"}.get(decision.verdict, decision.verdict)
    report.update(candidate_id=candidate_id, decision=outcome, reasons=decision.reasons,
                  metrics={"candidate": decision.candidate, "active": decision.active}, checks=decision.checks,
                  summary={"promoted": "candidate promoted",
                           "rejected": "candidate rejected: " + "; ".join(decision.reasons)}.get(
                      outcome, f"candidate kept for an admin to decide: {'; '.join(decision.reasons)}"))
    return _write_report(workdir, report)


def taught_answers(corrections: Sequence[Pair], background: Sequence[Pair]) -> TaughtAnswers:
    """The corrections as taught answers (the customer's side of the context window, what the agent
    wrote), in export order so that a later answer to the same question wins; idf also over ``background``."""
    from chatbot.text.taught import TaughtAnswers, TaughtEntry, customer_side

    entries = {_key(p): TaughtEntry(question, p.reply, p.language, p.meta.get("conversation_id"))
               for p in corrections if (question := customer_side(p.context))}
    return TaughtAnswers.build(entries.values(), [customer_side(p.context) for p in background[:5000]])


def _key(pair: Pair) -> tuple[str, Any]:
    """One exported reply (the export repeats a correction by its weight; the copies share this key)."""
    return pair.conversation, pair.meta.get("seq")


def _defaults(settings: Settings, full: bool) -> dict[str, Any]:
    """A fine-tune is a fixed number of steps at a fine-tuning rate (3 epochs of a few new pairs were 3 steps
    inside the warmup); a full run trains like ``chatbot train``."""
    if full:
        return {"epochs": 20, "warmup_steps": 50, "checkpoint_minutes": 2.0}
    steps = settings.nightly_steps
    return {"epochs": 1000, "max_steps": steps, "lr": settings.nightly_lr, "warmup_steps": max(1, steps // 10),
            "eval_every": max(1, steps // 10), "patience": 5, "checkpoint_minutes": 2.0}


def _window(base: Path | None, settings: Settings) -> dict[str, Any]:
    """The context window to train in: a fine-tune keeps its base model's, so the gate compares two models that
    see the same turns (serving gives each model the window it was trained with)."""
    if base is not None:
        from chatbot.model.checkpoint import load_checkpoint

        train_cfg = (load_checkpoint(base).config.get("extra") or {}).get("train_config") or {}
        if "max_turns" in train_cfg:
            return {"max_turns": int(train_cfg["max_turns"]),
                    "max_src_tokens": int(train_cfg.get("max_src_tokens", settings.context_max_tokens))}
    return {"max_turns": settings.context_turns, "max_src_tokens": settings.context_max_tokens}


def held_out_corrections(pairs: Sequence[Pair], share: float) -> list[Pair]:
    """Every k-th corrected conversation (k = 1/share) of each taught answer, in hash order, all its
    corrections: never trained on.

    By conversation so that no phrasing the gate asks about was trained on in a sibling turn. Within each
    answer (a conversation's first correction, normalized) so that each answer keeps k-1 of every k phrasings
    to learn from: one hash order across all of them held out 5 of the 8 conversations that taught the
    gift-card answer and 0 of another's, and the gift-card answer was never learned. Answers taught fewer than
    k times are all trained on; answers taught once share one hash order (every k-th of them is held out), so
    a night of varied edits still gives the gate its share."""
    import hashlib

    from chatbot.text.tokenize import normalize

    first: dict[str, Pair] = {}
    for p in pairs:
        if p.meta.get("kind") == "corrected":
            seen = first.get(p.conversation)
            if seen is None or (p.meta.get("seq") or 0) < (seen.meta.get("seq") or 0):
                first[p.conversation] = p
    by_answer: dict[str, list[str]] = defaultdict(list)
    for conversation, p in first.items():
        by_answer[normalize(p.reply).casefold()].append(conversation)
    every = max(1, round(1 / share))
    singles = [c for convs in by_answer.values() if len(convs) == 1 for c in convs]
    groups = [convs for convs in by_answer.values() if len(convs) > 1] + [singles]
    held: set[str] = set()
    for convs in groups:
        ordered = sorted(convs, key=lambda c: hashlib.sha1(f"corrections:{c}".encode()).hexdigest())
        held.update(ordered[every - 1 :: every])
    unique = {_key(p): p for p in pairs if p.conversation in held and p.meta.get("kind") == "corrected"}
    return list(unique.values())  # the export repeats a correction by its weight; the gate asks once


def replay_size(new_pairs: int, settings: Settings, cfg: Any) -> int:
    """Replayed pairs for a fine-tune: enough to fill its step budget without drawing one twice, and at least
    ``nightly_replay_ratio`` per new pair and ``nightly_replay_min``.

    A replay sample smaller than the steps consume is rehearsed for epochs, and training again and again on
    pairs the active model has already fitted raises its general perplexity by itself: on the shipped model
    (K = 10 taught facts, LR 1e-3, 500 steps) the gate's perplexity ratio was x1.059 with 12,000 replayed pairs
    seen 3 times each and x1.026 with 36,000 seen about once, the facts learned alike."""
    budget = (cfg.max_steps or 0) * cfg.max_batch_size - new_pairs
    return max(round(settings.nightly_replay_ratio * new_pairs), settings.nightly_replay_min, budget)


def replay_corpora(settings: Settings, max_turns: int) -> list[Pair]:
    """The corpora a replay sample draws from besides the store: ``nightly_replay_data`` specs, and the training
    part of ``nightly_replay_recipe``'s data mix with each source repeated by its weight (a small-talk corpus
    weighted up in the active model's training keeps that weight in its rehearsal)."""
    from training.sources import load_pairs, split_dev, weighted
    from training.train import TrainConfig

    pairs = load_pairs(settings.nightly_replay_data, max_turns) if settings.nightly_replay_data else []
    if settings.nightly_replay_recipe is not None:
        recipe = TrainConfig.from_toml(settings.nightly_replay_recipe)
        if not recipe.data:
            raise NightlyError(f"nightly_replay_recipe {settings.nightly_replay_recipe} has no [[data]] tables")
        for entry in recipe.data:
            pairs += weighted(split_dev(load_pairs([entry.spec], max_turns), recipe.dev_fraction)[0], entry.weight)
    return pairs


def replay_sample(earlier: Sequence[Pair], extra: Sequence[Pair], size: int, seed: int,
                  corrected: Sequence[Pair] = ()) -> list[Pair]:
    """``size`` pairs of earlier training data (the store's older pairs and ``replay_corpora``), drawn
    without replacement, so a fine-tune on a few new pairs keeps rehearsing what the model already knew.

    Pairs answering a question an agent corrected (the same last customer message) are left out: replaying
    the old answer beside the correction would teach both."""
    import random

    from chatbot.text.tokenize import normalize

    def question(p: Pair) -> str:
        last = [text for role, text in p.context if role == "customer"]
        return normalize(last[-1]).casefold() if last else ""

    superseded = {question(p) for p in corrected}
    pool = [p for p in (*earlier, *extra) if question(p) not in superseded]
    if size <= 0 or not pool:
        return []
    return random.Random(seed).sample(pool, min(size, len(pool)))


def _toml(path: Path | None) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8")) if path is not None else {}


def _write_report(workdir: Path, report: dict[str, Any]) -> dict[str, Any]:
    report["finished_at"] = datetime.now().astimezone().isoformat()
    write_private_text(workdir / "report.json", json.dumps(report, indent=2, default=str))
    write_private_text(workdir / "report.md", render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    from chatbot.store.files import report_cell  # erasure finds the quoted rows' lines by this escaping

    lines = [f"# Nightly job {report['job_id']}: {report['decision']}", "",
             f"- started: {report['started_at']}", f"- new data since: {report['since'] or 'beginning'}",
             f"- mode: {'full retrain' if report['full'] else 'fine-tune of the active model'}",
             f"- summary: {report.get('summary', '')}", "", "## Data", "", "| count | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["data"].items()]
    metrics = report.get("metrics")
    if metrics:
        new, old = metrics.get("candidate") or {}, metrics.get("active") or {}
        lines += ["", "## Metrics", "", "| metric | active | candidate |", "|---|---|---|"]
        for key in ("bleu", "chrf", "rouge_l", "meteor", "perplexity", "entity_copy_recall", "distinct_1",
                    "distinct_2", "n", "avg_len"):
            lines.append(f"| {key} | {_cell(old.get(key))} | {_cell(new.get(key))} |")
    checks = report.get("checks") or []
    if checks:
        lines += ["", "## Gate checks (paired bootstrap intervals)", "",
                  "| suite | metric | n | active | candidate | difference | interval | passed |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in checks:
            diff = c.get("mean_difference", c.get("ratio"))
            interval = "-" if not c.get("interval") else f"{_cell(c['interval'][0])} to {_cell(c['interval'][1])}"
            lines.append(f"| {c.get('suite', '')} | {c['metric']} | {_cell(c.get('n'))} | {_cell(c.get('active'))} | "
                         f"{_cell(c.get('candidate'))} | {_cell(diff)} | {interval} | "
                         f"{'skipped' if c.get('skipped') else _cell(c.get('passed'))} |")
    learned = (metrics or {}).get("candidate", {}).get("corrections") or []
    if learned:
        lines += ["", "## Held-out agent corrections", "", "| customer | agent wrote | active model | candidate |",
                  "|---|---|---|---|"]
        lines += [f"| {report_cell(r['customer'])} | {report_cell(r['agent'])} | "
                  f"{report_cell(r.get('active_reply') or '')} | {report_cell(r['reply'])} |" for r in learned]
    if report.get("reasons"):
        lines += ["", "## Why it was not promoted", ""] + [f"- {r}" for r in report["reasons"]]
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
