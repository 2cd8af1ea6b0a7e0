"""The baseline: the review store as callqa wrote it before its schema had versions (96be4ab).

The review store as callqa wrote it before its schema had versions (commit 96be4ab, 2026-11): calls and their
predictions, scorecards in columns, reviews and their corrections, evidence, appeals and rulings, API keys.

A store written by that code is brought here by `callqa db upgrade` (it adds what older stores lacked, then stamps
this revision); a new store starts here.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('agent_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_api_keys_sha256'), 'api_keys', ['sha256'], unique=True)
    op.create_table('review_calls',
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('agent_id', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('turns', sa.Integer(), nullable=False),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('added', sa.DateTime(timezone=True), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('prediction_id', sa.Integer(), nullable=True),
    sa.Column('total', sa.Float(), nullable=True),
    sa.Column('max_total', sa.Float(), nullable=True),
    sa.Column('red_line', sa.Boolean(), nullable=True),
    sa.Column('entropy', sa.Float(), nullable=False),
    sa.Column('margin', sa.Float(), nullable=False),
    sa.Column('low_score', sa.Float(), nullable=True),
    sa.Column('sample_key', sa.Float(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('call', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('call_id')
    )
    op.create_index(op.f('ix_review_calls_agent_id'), 'review_calls', ['agent_id'], unique=False)
    op.create_index('ix_review_calls_queue', 'review_calls', ['revision', 'sample_key', 'entropy', 'margin', 'low_score', 'lease_owner', 'lease_until', 'agent_id', 'call_id'], unique=False)
    op.create_index('ix_review_calls_report', 'review_calls', ['started_at', 'agent_id', 'revision', 'total', 'red_line', 'prediction_id'], unique=False)
    op.create_index('ix_review_calls_reviewed', 'review_calls', ['reviewed_at', 'agent_id'], unique=False)
    op.create_index(op.f('ix_review_calls_sample_key'), 'review_calls', ['sample_key'], unique=False)
    op.create_table('evidence',
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['review_calls.call_id'], ),
    sa.PrimaryKeyConstraint('call_id', 'model')
    )
    op.create_table('predictions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['review_calls.call_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_predictions_call_id'), 'predictions', ['call_id'], unique=False)
    op.create_table('reviewed_scorecard_items',
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('item', sa.String(length=100), nullable=False),
    sa.Column('points', sa.Float(), nullable=False),
    sa.Column('max_points', sa.Float(), nullable=False),
    sa.Column('deductions', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['review_calls.call_id'], ),
    sa.PrimaryKeyConstraint('call_id', 'item')
    )
    op.create_table('reviewed_topics',
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('head', sa.String(length=100), nullable=False),
    sa.Column('topic', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['review_calls.call_id'], ),
    sa.PrimaryKeyConstraint('call_id', 'head', 'topic')
    )
    op.create_table('appeals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('prediction_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.String(length=200), nullable=False),
    sa.Column('filed_by', sa.String(length=64), nullable=False),
    sa.Column('filed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['review_calls.call_id'], ),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_appeals_agent_id'), 'appeals', ['agent_id'], unique=False)
    op.create_index(op.f('ix_appeals_call_id'), 'appeals', ['call_id'], unique=False)
    op.create_index(op.f('ix_appeals_filed_at'), 'appeals', ['filed_at'], unique=False)
    op.create_table('prediction_topics',
    sa.Column('prediction_id', sa.Integer(), nullable=False),
    sa.Column('head', sa.String(length=100), nullable=False),
    sa.Column('topic', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ),
    sa.PrimaryKeyConstraint('prediction_id', 'head', 'topic')
    )
    op.create_table('reviewed_scorecards',
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('prediction_id', sa.Integer(), nullable=False),
    sa.Column('total', sa.Float(), nullable=False),
    sa.Column('max_total', sa.Float(), nullable=False),
    sa.Column('red_line', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['review_calls.call_id'], ),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ),
    sa.PrimaryKeyConstraint('call_id')
    )
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=64), nullable=False),
    sa.Column('reviewer_name', sa.String(length=200), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('prediction_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['review_calls.call_id'], ),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id', 'revision')
    )
    op.create_index(op.f('ix_reviews_call_id'), 'reviews', ['call_id'], unique=False)
    op.create_index(op.f('ix_reviews_created'), 'reviews', ['created'], unique=False)
    op.create_table('scorecard_items',
    sa.Column('prediction_id', sa.Integer(), nullable=False),
    sa.Column('item', sa.String(length=100), nullable=False),
    sa.Column('section', sa.String(length=100), nullable=False),
    sa.Column('points', sa.Float(), nullable=False),
    sa.Column('max_points', sa.Float(), nullable=False),
    sa.Column('deductions', sa.Integer(), nullable=False),
    sa.Column('applicable', sa.Boolean(), nullable=False),
    sa.Column('red_line', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ),
    sa.PrimaryKeyConstraint('prediction_id', 'item')
    )
    op.create_table('scorecards',
    sa.Column('prediction_id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('total', sa.Float(), nullable=False),
    sa.Column('max_total', sa.Float(), nullable=False),
    sa.Column('red_line', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ),
    sa.PrimaryKeyConstraint('prediction_id')
    )
    op.create_index('ix_scorecards_call', 'scorecards', ['call_id', 'prediction_id'], unique=False)
    op.create_index(op.f('ix_scorecards_red_line'), 'scorecards', ['red_line'], unique=False)
    op.create_table('appeal_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('item', sa.String(length=100), nullable=False),
    sa.Column('rule', sa.String(length=100), nullable=True),
    sa.Column('turn', sa.Integer(), nullable=True),
    sa.Column('start', sa.Integer(), nullable=True),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_appeal_entries_appeal_id'), 'appeal_entries', ['appeal_id'], unique=False)
    op.create_index(op.f('ix_appeal_entries_call_id'), 'appeal_entries', ['call_id'], unique=False)
    op.create_table('corrections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('head', sa.String(length=100), nullable=False),
    sa.Column('previous', sa.JSON(), nullable=True),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_corrections_call_id'), 'corrections', ['call_id'], unique=False)
    op.create_index(op.f('ix_corrections_review_id'), 'corrections', ['review_id'], unique=False)
    op.create_table('review_reasons',
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('head', sa.String(length=100), nullable=False),
    sa.Column('turn', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], ),
    sa.PrimaryKeyConstraint('review_id', 'head', 'turn')
    )
    op.create_index(op.f('ix_review_reasons_call_id'), 'review_reasons', ['call_id'], unique=False)
    op.create_table('scorecard_corrections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=200), nullable=False),
    sa.Column('item', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('rule', sa.String(length=100), nullable=True),
    sa.Column('turn', sa.Integer(), nullable=True),
    sa.Column('start', sa.Integer(), nullable=True),
    sa.Column('end', sa.Integer(), nullable=True),
    sa.Column('points', sa.Float(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_scorecard_corrections_call_id'), 'scorecard_corrections', ['call_id'], unique=False)
    op.create_index(op.f('ix_scorecard_corrections_review_id'), 'scorecard_corrections', ['review_id'], unique=False)
    op.create_table('appeal_rulings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('decided_by_name', sa.String(length=200), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['appeal_entries.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('entry_id')
    )


def downgrade() -> None:
    op.drop_table('appeal_rulings')
    op.drop_index(op.f('ix_scorecard_corrections_review_id'), table_name='scorecard_corrections')
    op.drop_index(op.f('ix_scorecard_corrections_call_id'), table_name='scorecard_corrections')
    op.drop_table('scorecard_corrections')
    op.drop_index(op.f('ix_review_reasons_call_id'), table_name='review_reasons')
    op.drop_table('review_reasons')
    op.drop_index(op.f('ix_corrections_review_id'), table_name='corrections')
    op.drop_index(op.f('ix_corrections_call_id'), table_name='corrections')
    op.drop_table('corrections')
    op.drop_index(op.f('ix_appeal_entries_call_id'), table_name='appeal_entries')
    op.drop_index(op.f('ix_appeal_entries_appeal_id'), table_name='appeal_entries')
    op.drop_table('appeal_entries')
    op.drop_index(op.f('ix_scorecards_red_line'), table_name='scorecards')
    op.drop_index('ix_scorecards_call', table_name='scorecards')
    op.drop_table('scorecards')
    op.drop_table('scorecard_items')
    op.drop_index(op.f('ix_reviews_created'), table_name='reviews')
    op.drop_index(op.f('ix_reviews_call_id'), table_name='reviews')
    op.drop_table('reviews')
    op.drop_table('reviewed_scorecards')
    op.drop_table('prediction_topics')
    op.drop_index(op.f('ix_appeals_filed_at'), table_name='appeals')
    op.drop_index(op.f('ix_appeals_call_id'), table_name='appeals')
    op.drop_index(op.f('ix_appeals_agent_id'), table_name='appeals')
    op.drop_table('appeals')
    op.drop_table('reviewed_topics')
    op.drop_table('reviewed_scorecard_items')
    op.drop_index(op.f('ix_predictions_call_id'), table_name='predictions')
    op.drop_table('predictions')
    op.drop_table('evidence')
    op.drop_index(op.f('ix_review_calls_sample_key'), table_name='review_calls')
    op.drop_index('ix_review_calls_reviewed', table_name='review_calls')
    op.drop_index('ix_review_calls_report', table_name='review_calls')
    op.drop_index('ix_review_calls_queue', table_name='review_calls')
    op.drop_index(op.f('ix_review_calls_agent_id'), table_name='review_calls')
    op.drop_table('review_calls')
    op.drop_index(op.f('ix_api_keys_sha256'), table_name='api_keys')
    op.drop_table('api_keys')
