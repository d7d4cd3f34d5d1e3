"""CEL's tokens: the lexical grammar of the CEL spec (``langdef.md``), and its syntax errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["CelSyntaxError", "Token", "Unsupported", "lex"]


class CelSyntaxError(Exception):
    """The rule is not valid CEL (as far as this parser knows)."""


class Unsupported(Exception):
    """Valid CEL, but outside the subset this evaluator implements."""


_PUNCT = (
    "==",
    "!=",
    "<=",
    ">=",
    "&&",
    "||",
    "<",
    ">",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "?",
    ":",
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
)
# Reserved by the CEL spec (langdef.md): not usable as identifiers.
_RESERVED = frozenset(
    (
        *("as", "break", "const", "continue", "else", "for", "function", "if", "import"),
        *("let", "loop", "package", "namespace", "return", "var", "void", "while"),
    )
)
_RX_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+[uU]?|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[uU]?|[0-9]+[uU]?"
)
_RX_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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


@dataclass(frozen=True)
class Token:
    """One token of a CEL expression, at character ``pos``."""

    kind: str  # "int", "double", "string", "ident", "punct", "eof"
    value: Any
    pos: int


def lex(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``eof`` token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if ch.isdigit():
            match = _RX_NUMBER.match(text, i)
            assert match is not None
            tokens.append(_number_token(match.group(), i))
            i = match.end()
            continue
        if ch in "'\"" or (ch in "rRbB" and i + 1 < n and text[i + 1] in "'\""):
            value, i = _lex_string(text, i)
            tokens.append(Token("string", value, i))
            continue
        if ch.isalpha() or ch == "_":
            match = _RX_IDENT.match(text, i)
            assert match is not None
            word = match.group()
            if word in _RESERVED:
                raise CelSyntaxError(f"reserved identifier {word!r}")
            tokens.append(Token("ident", word, i))
            i = match.end()
            continue
        for punct in _PUNCT:
            if text.startswith(punct, i):
                tokens.append(Token("punct", punct, i))
                i += len(punct)
                break
        else:
            raise CelSyntaxError(f"unexpected character {ch!r} at {i}")
    tokens.append(Token("eof", None, n))
    return tokens


def _number_token(text: str, pos: int) -> Token:
    unsigned = text[-1] in "uU"
    body = text[:-1] if unsigned else text
    if body[:2] in ("0x", "0X"):
        return Token("int", int(body, 16), pos)
    if unsigned or not any(c in body for c in ".eE"):
        return Token("int", int(body), pos)
    return Token("double", float(body), pos)


def _lex_string(text: str, i: int) -> tuple[str, int]:
    raw = False
    if text[i] in "bB":
        raise Unsupported("bytes literals are not supported")
    if text[i] in "rR":
        raw = True
        i += 1
    quote = text[i] * 3 if text.startswith(text[i] * 3, i) else text[i]
    i += len(quote)
    out: list[str] = []
    while True:
        if i >= len(text):
            raise CelSyntaxError("unterminated string literal")
        if text.startswith(quote, i):
            return "".join(out), i + len(quote)
        ch = text[i]
        if ch == "\n" and len(quote) == 1:
            raise CelSyntaxError("newline in string literal")
        if ch == "\\" and not raw:
            i += 1
            if i >= len(text):
                raise CelSyntaxError("unterminated escape")
            esc = text[i]
            if esc in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[esc])
                i += 1
            elif esc in "xX" or esc in "uU":
                width = {"x": 2, "X": 2, "u": 4, "U": 8}[esc]
                digits = text[i + 1 : i + 1 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise CelSyntaxError("bad escape sequence")
                out.append(chr(int(digits, 16)))
                i += 1 + width
            elif esc in "0123":
                digits = text[i : i + 3]
                if len(digits) != 3 or not all(c in "01234567" for c in digits):
                    raise CelSyntaxError("bad octal escape")
                out.append(chr(int(digits, 8)))
                i += 3
            else:
                raise CelSyntaxError(f"bad escape \\{esc}")
            continue
        out.append(ch)
        i += 1
