"""Migrations on both engines: empty -> head -> base -> head, models == migrations, concurrent upgrades."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from chatbot.store.db import current_revision, downgrade, head_revision, make_engine, upgrade
from chatbot.store.models import Base

TABLES = {table.name for table in Base.metadata.sorted_tables}


def _tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_to_head_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        assert _tables(engine) == set()
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert _tables(engine) == TABLES
        upgrade(engine)  # idempotent
        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert _tables(engine) == set()
        upgrade(db_url)  # also from a URL, with its own short-lived engine
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_models_and_migrations_agree(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_history_and_queue_indexes_exist(engine) -> None:  # type: ignore[no-untyped-def]
    inspector = inspect(engine)
    message_keys = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("messages")}
    assert ("conversation_id", "seq") in message_keys
    conversation_indexes = {tuple(i["column_names"]) for i in inspector.get_indexes("conversations")}
    assert ("status", "updated_at") in conversation_indexes
    assert ("customer_id",) in conversation_indexes
    assert ("created_at",) in {tuple(i["column_names"]) for i in inspector.get_indexes("messages")}


def test_concurrent_upgrades_are_safe(db_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def migrate() -> None:
        engine = make_engine(db_url, pool_size=1)
        try:
            start.wait()
            upgrade(engine)
        except BaseException as err:  # collected and asserted below
            errors.append(err)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert _tables(engine) == TABLES
    finally:
        engine.dispose()
