"""Shadow testing (issue 18): which registered version is shadowed, and the replies it wrote beside the active one.

``model_versions.shadowed_at`` marks the one candidate that decodes a sample of live customer messages in the
background (set by an admin, cleared when shadowing stops or the version is promoted); ``shadow_replies``
keeps each such reply next to the active model's reply it shadows, never sent to anyone. Correction
analytics read the existing reviews and messages and need no schema of their own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shadowed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('shadow_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_shadow_replies_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_shadow_replies_model_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_replies')),
    sa.UniqueConstraint('message_id', 'model_version_id', name=op.f('uq_shadow_replies_message_id_model_version_id'))
    )
    with op.batch_alter_table('shadow_replies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shadow_replies_model_version_id'), ['model_version_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shadow_replies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shadow_replies_model_version_id'))
    op.drop_table('shadow_replies')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('shadowed_at')
