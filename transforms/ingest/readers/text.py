"""Decoding council CSVs, and the shape of their first lines.

UTF-8 (with or without a byte-order mark) is the norm; Windows-1252 the common exception (a sheet saved as
"CSV" by Excel on Windows); UTF-16 with a byte-order mark what "Unicode text" or a redirect in a Windows shell
writes. A BOM is unambiguous, so UTF-16 with one is decoded rather than refused. Text holding NUL characters
after decoding is not a text file (a UTF-16 file without a BOM, or binary data) and is refused: its cells
would otherwise reach messages as mis-decoded noise.

Spreadsheets saved as CSV also write *blank lines*: empty, spaces only, or a row of empty cells
(``,,,,``). ``is_blank_line`` says which lines those are; the header row is the first line that is not.
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path

_XML_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_BLANK_CHARS = " \t\r\n,;\"'\ufeff\x0b\x0c"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class NotText(ValueError):
    """The bytes are not text in an encoding councils' software writes (the reason says which)."""


def decode(data: bytes) -> tuple[str, str]:
    """Return the text and the encoding that read it (``utf-8``, ``utf-16`` or ``cp1252``); BOMs removed.

    Raises ``NotText`` for UTF-16 that does not decode, or text with NUL characters.
    """
    if data[:2] in _UTF16_BOMS and not data.startswith(codecs.BOM_UTF32_LE):
        try:
            text, encoding = data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise NotText("UTF-16 text (byte-order mark) that does not decode: truncated or damaged; "
                          "save it again as CSV UTF-8") from None
    else:
        try:
            text, encoding = data.decode("utf-8-sig"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = data.decode("cp1252", errors="replace"), "cp1252"
    if "\x00" in text:
        raise NotText(_nul_reason(data))
    return text, encoding


def _nul_reason(data: bytes) -> str:
    head = data[:4096]
    odd_nuls = head[1::2].count(0)
    even_nuls = head[0::2].count(0)
    if max(odd_nuls, even_nuls) > len(head) // 4:
        return "looks like UTF-16 text without a byte-order mark: save it as CSV UTF-8"
    return "holds NUL bytes: not a text file"


def read_text(path: Path) -> tuple[str, str]:
    """The whole file decoded (see ``decode``). Raises ``NotText``."""
    return decode(Path(path).read_bytes())


def head_text(path: Path, limit: int = 65536) -> str:
    """The start of a file, decoded as ``decode`` would (a cut character at the end is dropped)."""
    with open(path, "rb") as fh:
        head = fh.read(limit)
    if head[:2] in _UTF16_BOMS:
        head = head[: len(head) - len(head) % 2]
        text = head.decode("utf-16", errors="ignore")
    else:
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            text = head.decode("utf-8-sig", errors="ignore") if exc.start > len(head) - 4 else \
                head.decode("cp1252", errors="replace")
    return text.replace("\x00", "")


def is_blank_line(line: str) -> bool:
    """Empty, whitespace only, or only separators and empty quotes (``,,,,``, ``"",""``)."""
    return not line.strip(_BLANK_CHARS)


def first_line(path: Path, limit: int = 65536) -> str:
    """The first line that is not blank (the header row, if the file has one); "" when there is none."""
    return next((line for line in head_text(path, limit).splitlines() if not is_blank_line(line)), "")


def leading_blank_lines(text: str) -> int:
    """How many blank lines (``is_blank_line``) come before the first line that is not."""
    n = 0
    for line in text.splitlines():
        if not is_blank_line(line):
            return n
        n += 1
    return n


def count_records(text: str) -> tuple[int, bool]:
    """(non-blank lines, whether there is any): what a CSV holds, for the ledger's ``rows_in``."""
    n = sum(1 for line in text.splitlines() if not is_blank_line(line))
    return n, n > 0


def refuses_dtd(head: bytes) -> bool:
    """Statutory returns never carry a DTD; one in the prolog is an entity-expansion or XXE attempt."""
    return bool(_XML_DTD.search(head))
