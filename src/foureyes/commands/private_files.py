"""`foureyes init` keeps its data directory and database for foureyes' user alone.

An existing data directory (made by hand, or by `mkdir` under a 022 umask) keeps whatever mode
it had, and SQLite creates its database file with the umask's mode (0644): every local user
could then read the requests, the audit log and the staff directory. So `init` tightens an
existing data directory to 0700 and the SQLite database (and its journal files) to 0600, or
refuses, in one line, when it cannot (another user owns it). What an existing directory already
holds is checked too (`private_contents`): while it was open to others, anyone could have planted
a `keys` symlink to a directory of theirs, or a console key they know.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from foureyes.errors import BadInput

__all__ = ["private_contents", "private_database", "private_dir"]

_JOURNALS = ("", "-wal", "-shm", "-journal")
# Directories whose files are keys or secrets: one that others could read may have been copied.
_SECRET_DIRS = ("keys", "secrets")


def private_dir(root: Path) -> None:
    """Make the existing data directory `root` mode 0700. BadInput when it is not a
    directory, or is someone else's (its mode cannot be changed by us)."""
    try:
        found = root.stat()
    except OSError as exc:
        raise BadInput(f"{root}: cannot read it: {exc.strerror}") from None
    if not stat.S_ISDIR(found.st_mode):
        raise BadInput(f"{root} exists and is not a directory")
    if stat.S_IMODE(found.st_mode) & 0o077 == 0:
        return
    if found.st_uid != os.geteuid():
        raise BadInput(
            f"{root} is readable by others (mode {stat.S_IMODE(found.st_mode):o}) and belongs to "
            "another user: make it foureyes' user's, mode 0700, or init another --data-dir"
        )
    root.chmod(0o700)


def private_contents(root: Path) -> None:
    """Check what an existing data directory holds before init uses it: BadInput, naming the
    entry, for a symlink anywhere in it, an entry another user owns, or a key or secret that
    others could read (it may have been copied: remove it and init makes a new one); other
    entries are tightened (directories 0700, files 0600)."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in (*dirs, *files):
            path = here / name
            found = path.lstat()
            if stat.S_ISLNK(found.st_mode):
                raise BadInput(
                    f"{path} is a symbolic link: a data directory holds no links (one planted "
                    "there would send keys or secrets elsewhere); remove it, or init another "
                    "--data-dir"
                )
            if found.st_uid != os.geteuid():
                raise BadInput(
                    f"{path} belongs to another user: remove it, or init another --data-dir"
                )
            loose = stat.S_IMODE(found.st_mode) & 0o077
            if not loose:
                continue
            if not stat.S_ISDIR(found.st_mode) and _under_secret_dir(root, path):
                raise BadInput(
                    f"{path} was readable by others (mode {stat.S_IMODE(found.st_mode):o}) and "
                    "may have been copied: remove it (init makes a new key) or replace the secret"
                )
            path.chmod(0o700 if stat.S_ISDIR(found.st_mode) else 0o600)


def _under_secret_dir(root: Path, path: Path) -> bool:
    parts = path.relative_to(root).parts
    return len(parts) > 1 and parts[0] in _SECRET_DIRS


def private_database(database_url: str) -> None:
    """Make a SQLite database file and its journals mode 0600 (nothing for PostgreSQL, whose
    files the server keeps)."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return
    if not url.drivername.startswith("sqlite") or not url.database:
        return
    if url.database == ":memory:":
        return
    for suffix in _JOURNALS:
        path = Path(url.database + suffix)
        try:
            found = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(found.st_mode) or not stat.S_ISREG(found.st_mode):
            raise BadInput(f"{path} is not a regular file: the database must be one")
        if stat.S_IMODE(found.st_mode) & 0o077:
            path.chmod(0o600)
