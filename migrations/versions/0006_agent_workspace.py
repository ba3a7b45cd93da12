"""Agent workspace (issue 21): what agents did with the console's suggested replies (``suggestion_uses``).

Saved replies need no table: they are the company facts of 0002 (title, text, language), which the
grounding check already reads. Assignment uses ``conversations.assigned_agent_id`` as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'suggestion_uses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=True),
        sa.Column('candidate_rank', sa.Integer(), nullable=True),
        sa.Column('fact_id', sa.Integer(), nullable=True),
        sa.Column('suggestions_shown', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('as_is', 'edited', 'ignored')", name=op.f('ck_suggestion_uses_outcome')),
        sa.CheckConstraint("source IS NULL OR source IN ('model', 'saved')", name=op.f('ck_suggestion_uses_source')),
        sa.ForeignKeyConstraint(['agent_id'], ['users.id'], name=op.f('fk_suggestion_uses_agent_id_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['fact_id'], ['company_facts.id'], name=op.f('fk_suggestion_uses_fact_id_company_facts'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_suggestion_uses_message_id_messages'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_suggestion_uses')),
        sa.UniqueConstraint('message_id', name=op.f('uq_suggestion_uses_message_id')),
    )
    with op.batch_alter_table('suggestion_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestion_uses_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('suggestion_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestion_uses_created_at'))
    op.drop_table('suggestion_uses')
