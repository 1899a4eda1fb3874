"""Which `audit_events` rows are events of the log: those its Merkle tree covers, seq 0 up to
(not including) the head's size.

A row outside that range (a negative seq, or one at or beyond the head) is covered by no root,
no checkpoint and no witness: anyone who may insert into the table can write one without
touching the head or the stored subtrees. So nothing decides on one: every read of events that
a decision, a check or a person relies on (a request's trail, seals, the detectors' cursor and
events, who acted on a request, the policy installed, timelines) keeps to `in_tree()`, the head
check (`foureyes.audit.log.AuditLog.head_problem`) names any such row, and the database refuses
a negative seq on insert (migration 0013).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ColumnElement, Integer, and_, func, literal_column, select

from foureyes.store.tables import AuditHeadRow, EventRow

__all__ = ["HEAD_ID", "head_size", "in_tree"]

HEAD_ID = 1
"""The id of the one `audit_head` row."""

# Constants as literals, not parameters: statements compiled once and run with only their own
# parameters (`store.dry_run_reads`) read seals through `in_tree`.
_HEAD_ID = literal_column(str(HEAD_ID), Integer)
_FIRST_SEQ = literal_column("0", BigInteger)
_NO_HEAD = literal_column(str(2**63 - 1), BigInteger)


def head_size() -> ColumnElement[int]:
    """The log's size as a scalar subquery (never correlated with an enclosing query)."""
    return (
        select(AuditHeadRow.size)
        .where(AuditHeadRow.id == _HEAD_ID)
        .correlate(None)
        .scalar_subquery()
    )


def in_tree() -> ColumnElement[bool]:
    """For a query on `EventRow`: the row is one the tree covers (0 <= seq < the head's size).
    One index look-up more per statement (the head row), evaluated once. Without a head row
    only the lower bound holds: a missing head is itself a finding (`LogHeadAltered`), which
    refuses every change, and reads go on as they did before it."""
    return _IN_TREE


# Built once (SQL expressions are immutable; building this one cost more than a page's use of
# it: the inbox's lists and badge put it in five statements).
_IN_TREE: ColumnElement[bool] = and_(
    EventRow.seq >= _FIRST_SEQ, EventRow.seq < func.coalesce(head_size(), _NO_HEAD)
)
