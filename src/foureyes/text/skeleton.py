"""Unicode's confusable skeleton (UTS #39, section 4): two strings that look alike to a reader
have the same skeleton. What the namesake check of the HR import compares people's names under
(`foureyes.text.folding`), and what a name's words are read under for the shape of a staff id
(`foureyes.text.names`).

The data is Unicode's own `confusables.txt` (`data/confusables.txt`, version
`CONFUSABLES_VERSION`, kept byte for byte: its header carries Unicode's copyright and terms),
not a table written here: `tests/unit/test_names.py` pins its version and digest, so a change
of the data is a change of the code. Neither the standard library nor a maintained wheel ships
a newer copy (PyICU has the newest, but builds from source against the system's ICU); 13.0.0
covers every letter that Python's own Unicode database (14.0) and the name rules (letters of
the scripts UAX #31 recommends) let into a name.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from importlib import resources

__all__ = ["CONFUSABLES_VERSION", "prototypes", "skeleton"]

CONFUSABLES_VERSION = "13.0.0"


@cache
def prototypes() -> dict[int, str]:
    """Code point → the prototype it is confusable with (`str.translate`'s table), from the
    data file. Loaded once, on first use."""
    text = resources.files("foureyes.text").joinpath("data/confusables.txt").read_text("utf-8-sig")
    table: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 3:
            continue  # a comment or a blank line
        source = [int(point, 16) for point in fields[0].split()]
        if len(source) != 1:
            raise ValueError("confusables.txt: a source of more than one code point")
        table[source[0]] = "".join(chr(int(point, 16)) for point in fields[1].split())
    return table


@cache
def _beyond_ascii() -> dict[int, str]:
    return {point: prototype for point, prototype in prototypes().items() if point > 0x7F}


def skeleton(text: str, *, ascii_too: bool = True) -> str:
    """UTS #39's `skeleton(X)`: NFD, each character replaced by its prototype, NFD again.
    With `ascii_too` False, ASCII characters are kept (`0`, `1`, `I` and `|` are left to a
    caller that reads digits its own way: `foureyes.text.folding`)."""
    table = prototypes() if ascii_too else _beyond_ascii()
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).translate(table))
