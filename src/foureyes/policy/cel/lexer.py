"""Tokens of the CEL grammar (cel-spec `langdef.md`, lexical structure)."""

from __future__ import annotations

from typing import NamedTuple


class CelSyntaxError(Exception):
    """Source text that is not CEL. `pos` is the 0-based character offset of the problem."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


class Token(NamedTuple):
    kind: str  # "int", "uint", "double", "string", "bytes", "ident", "eof", or the operator text
    value: object
    pos: int
    end: int


KEYWORDS = frozenset({"true", "false", "null", "in"})
# Reserved by the language: not usable as identifiers, though allowed as field names.
RESERVED = frozenset(
    {
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)

_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%")
_PUNCTUATION = frozenset("?:.,()[]{}")
_WHITESPACE = frozenset(" \t\r\n\f")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | _DIGITS
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
INT64_MAX = 2**63 - 1


def tokenize(src: str) -> list[Token]:
    """Split `src` into tokens; the last one has kind "eof"."""
    tokens: list[Token] = []
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c in _WHITESPACE:
            i += 1
        elif src.startswith("//", i):
            newline = src.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif c in _DIGITS or (c == "." and i + 1 < n and src[i + 1] in _DIGITS):
            token = _number(src, i)
            tokens.append(token)
            i = token.end
        elif c in "\"'" or (c in "rRbB" and _string_follows(src, i)):
            token = _string(src, i)
            tokens.append(token)
            i = token.end
        elif c in _IDENT_START:
            j = i + 1
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            word = src[i:j]
            tokens.append(Token(word if word in KEYWORDS else "ident", word, i, j))
            i = j
        elif c in _PUNCTUATION:
            tokens.append(Token(c, c, i, i + 1))
            i += 1
        else:
            for op in _OPERATORS:
                if src.startswith(op, i):
                    tokens.append(Token(op, op, i, i + len(op)))
                    i += len(op)
                    break
            else:
                raise CelSyntaxError(f"unexpected character {c!r}", i)
    tokens.append(Token("eof", None, n, n))
    return tokens


def _string_follows(src: str, i: int) -> bool:
    """Whether a string prefix (r, b, rb, br in any case) starts at `i`."""
    j = i
    while j < len(src) and j - i < 2 and src[j] in "rRbB":
        j += 1
    prefix = src[i:j].lower()
    for k in range(len(prefix), 0, -1):
        if i + k < len(src) and src[i + k] in "\"'" and prefix[:k] in ("r", "b", "rb", "br"):
            return True
    return False


def _number(src: str, i: int) -> Token:
    n = len(src)
    start = i
    if src.startswith(("0x", "0X"), i) and i + 2 < n and src[i + 2] in _HEX:
        if src[i + 1] == "X":
            raise CelSyntaxError("hexadecimal literals are written 0x…", i)
        j = i + 2
        while j < n and src[j] in _HEX:
            j += 1
        value = int(src[i + 2 : j], 16)
        return _integer(src, start, j, value)
    j = i
    while j < n and src[j] in _DIGITS:
        j += 1
    is_double = False
    if j < n and src[j] == "." and j + 1 < n and src[j + 1] in _DIGITS:
        is_double = True
        j += 1
        while j < n and src[j] in _DIGITS:
            j += 1
    if j < n and src[j] in "eE":
        k = j + 1
        if k < n and src[k] in "+-":
            k += 1
        if k < n and src[k] in _DIGITS:
            is_double = True
            while k < n and src[k] in _DIGITS:
                k += 1
            j = k
    text = src[start:j]
    if is_double:
        value_f = float(text)
        if value_f in (float("inf"), float("-inf")):
            raise CelSyntaxError("invalid double literal (out of range)", start)
        return Token("double", value_f, start, j)
    return _integer(src, start, j, int(text))


def _integer(src: str, start: int, j: int, value: int) -> Token:
    if j < len(src) and src[j] in "uU":
        if value >= 2**64:
            raise CelSyntaxError("invalid uint literal (out of range)", start)
        return Token("uint", value, start, j + 1)
    if value > INT64_MAX + 1:
        raise CelSyntaxError("invalid int literal (out of range)", start)
    # 2**63 is only valid negated; the parser checks that.
    return Token("int", value, start, j)


def _string(src: str, i: int) -> Token:
    start = i
    raw = is_bytes = False
    while src[i] in "rRbB":
        if src[i] in "rR":
            raw = True
        else:
            is_bytes = True
        i += 1
    quote = src[i]
    triple = src.startswith(quote * 3, i)
    delimiter = quote * 3 if triple else quote
    i += len(delimiter)
    parts: list[str] = []
    n = len(src)
    while True:
        if i >= n:
            raise CelSyntaxError("unterminated string literal", start)
        if src.startswith(delimiter, i):
            i += len(delimiter)
            break
        c = src[i]
        if not triple and c in "\r\n":
            raise CelSyntaxError("newline in a string literal (use a triple-quoted string)", start)
        if c == "\\" and not raw:
            text, i = _escape(src, i, is_bytes)
            parts.append(text)
        else:
            parts.append(c)
            i += 1
    text = "".join(parts)
    if is_bytes:
        # Characters below 0x100 that came from \x or octal escapes stand for single bytes; all
        # other text is UTF-8. Bytes are not compiled natively, so this only needs to be exact
        # enough to keep the token.
        return Token("bytes", text, start, i)
    return Token("string", text, start, i)


def _escape(src: str, i: int, is_bytes: bool) -> tuple[str, int]:
    """Decode the escape sequence at `src[i] == "\\"`; return the text and the next offset."""
    n = len(src)
    if i + 1 >= n:
        raise CelSyntaxError("unterminated escape sequence", i)
    c = src[i + 1]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i + 2
    if c in "xX":
        return _code_point(src, i, i + 2, 2), i + 4
    if c == "u" and not is_bytes:
        return _code_point(src, i, i + 2, 4), i + 6
    if c == "U" and not is_bytes:
        return _code_point(src, i, i + 2, 8), i + 10
    if c in "0123" and i + 3 < n and src[i + 2] in _OCTAL and src[i + 3] in _OCTAL:
        return chr(int(src[i + 1 : i + 4], 8)), i + 4
    raise CelSyntaxError(f"invalid escape sequence '\\{c}'", i)


def _code_point(src: str, escape_pos: int, start: int, digits: int) -> str:
    text = src[start : start + digits]
    if len(text) != digits or not all(ch in _HEX for ch in text):
        raise CelSyntaxError(f"escape needs {digits} hexadecimal digits", escape_pos)
    value = int(text, 16)
    if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        raise CelSyntaxError(f"invalid code point U+{value:04X} in escape", escape_pos)
    return chr(value)
