"""Promotion history (issue 19): every promote and rollback of the serving model, in order.

Rollback follows it (back to the version that served before the active one, skipping versions rolled
back away from), and serving falls back along it when the active version cannot load. Existing
installs get a history seeded from ``model_versions.promoted_at`` with the active version last, so the
first rollback after the upgrade goes where the old rule (latest earlier promotion) would have gone.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('model_promotions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('previous_id', sa.Integer(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('promote', 'rollback')", name=op.f('ck_model_promotions_action')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_model_promotions_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['previous_id'], ['model_versions.id'], name=op.f('fk_model_promotions_previous_id_model_versions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], name=op.f('fk_model_promotions_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_promotions'))
    )
    with op.batch_alter_table('model_promotions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_promotions_version_id'), ['version_id'], unique=False)
    _seed_history()


def _seed_history() -> None:
    versions = sa.table('model_versions', sa.column('id', sa.Integer), sa.column('status', sa.String),
                        sa.column('promoted_at', sa.DateTime(timezone=True)))
    promotions = sa.table('model_promotions', sa.column('version_id', sa.Integer), sa.column('action', sa.String),
                          sa.column('previous_id', sa.Integer), sa.column('created_at', sa.DateTime(timezone=True)))
    bind = op.get_bind()
    rows = bind.execute(sa.select(versions.c.id, versions.c.status, versions.c.promoted_at)
                        .where(versions.c.promoted_at.is_not(None))).all()
    ordered = sorted(rows, key=lambda r: (r.status == "active", r.promoted_at, r.id))
    previous = None
    now = datetime.now(timezone.utc)
    for row in ordered:
        bind.execute(promotions.insert().values(version_id=row.id, action="promote", previous_id=previous,
                                                created_at=row.promoted_at or now))
        previous = row.id


def downgrade() -> None:
    with op.batch_alter_table('model_promotions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_promotions_version_id'))
    op.drop_table('model_promotions')
