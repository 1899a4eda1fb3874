"""`Connector.search`, behind the console's account search: ids that start with the prefix as
typed (no LIKE pattern, the same case on every store), a handful, never a match on another
attribute; and a platform that cannot search finds nothing."""

from __future__ import annotations

from foureyes.connectors.memory import MemoryConnector
from foureyes.store.database import Database
from tests.worlds import make_world


def test_the_demo_platform_searches_ids_by_prefix_as_typed(database: Database) -> None:
    chirp = make_world(database).services.connector("chirp")
    assert chirp.search("pre", 10) == ("president",)
    assert chirp.search("PRE", 10) == ()  # ids as typed, on SQLite as on PostgreSQL
    assert chirp.search("", 2) == ("alice", "bob")
    for pattern in ("%", "_", "%t", "_ob", "\\", "pres%"):
        assert chirp.search(pattern, 10) == (), pattern
    assert chirp.search("mail.example", 10) == ()  # the emails' domain: never matched
    assert chirp.search("a", 0) == ()


def test_the_memory_platform_searches_ids_by_prefix() -> None:
    memory = MemoryConnector()
    for account_id in ("ann", "anna", "bob"):
        memory.add_account(account_id, email=f"{account_id}@example.org")
    assert memory.search("an", 10) == ("ann", "anna")
    assert memory.search("an", 1) == ("ann",)
    assert memory.search("example", 10) == ()
