"""Staff sessions, login throttling, idempotent sends, written files and model lineage (issue 19).

* ``staff_sessions``: server-side agent/admin sessions (the cookie holds a token, the row its hash), so
  logout, a password or role change and user removal end a session at once.
* ``login_failures``: failed logins by account and client address, for throttling (HTTP 429).
* ``messages.client_key``: a customer's ``Idempotency-Key``, unique per conversation: a retry finds the
  message it stored instead of storing it twice.
* ``written_files``: every export, nightly work file and report the product wrote, with the customers in
  it, so ``chatbot forget`` reaches every copy.
* ``model_versions.parent_id``: the version a model was fine-tuned from (erasure lists the heirs too).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'staff_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_staff_sessions_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_staff_sessions_token_hash')),
    )
    op.create_index(op.f('ix_staff_sessions_user_id'), 'staff_sessions', ['user_id'], unique=False)
    op.create_table(
        'login_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=150), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures')),
    )
    op.create_index(op.f('ix_login_failures_username_created_at'), 'login_failures', ['username', 'created_at'])
    op.create_index(op.f('ix_login_failures_address_created_at'), 'login_failures', ['address', 'created_at'])
    op.create_table(
        'written_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('path', sa.String(length=1000), nullable=False),
        sa.Column('customer_hashes', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_written_files')),
    )
    op.create_index(op.f('ix_written_files_created_at'), 'written_files', ['created_at'])
    op.add_column('messages', sa.Column('client_key', sa.String(length=100), nullable=True))
    op.create_index(op.f('ix_messages_conversation_id_client_key'), 'messages', ['conversation_id', 'client_key'],
                    unique=True)
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_model_versions_parent_id_model_versions'), 'model_versions',
                                    ['parent_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_model_versions_parent_id_model_versions'), type_='foreignkey')
        batch_op.drop_column('parent_id')
    op.drop_index(op.f('ix_messages_conversation_id_client_key'), table_name='messages')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('client_key')
    op.drop_index(op.f('ix_written_files_created_at'), table_name='written_files')
    op.drop_table('written_files')
    op.drop_index(op.f('ix_login_failures_address_created_at'), table_name='login_failures')
    op.drop_index(op.f('ix_login_failures_username_created_at'), table_name='login_failures')
    op.drop_table('login_failures')
    op.drop_index(op.f('ix_staff_sessions_user_id'), table_name='staff_sessions')
    op.drop_table('staff_sessions')
