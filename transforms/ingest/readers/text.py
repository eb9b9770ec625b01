"""Decoding council CSVs: UTF-8 (with or without a BOM) is the norm, Windows-1252 the common exception."""
from __future__ import annotations

import re
from pathlib import Path

_XML_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def decode(data: bytes) -> tuple[str, str]:
    """Return the text and the encoding that read it; BOMs are removed."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="strict"), "cp1252"


def read_text(path: Path) -> tuple[str, str]:
    data = Path(path).read_bytes()
    try:
        return decode(data)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: neither UTF-8 nor Windows-1252 text (byte {exc.start})") from None


def first_line(path: Path, limit: int = 65536) -> str:
    with open(path, "rb") as fh:
        head = fh.read(limit)
    try:
        text, _ = decode(head)
    except UnicodeDecodeError:
        text = head.decode("cp1252", errors="replace")
    return text.splitlines()[0] if text else ""


def refuses_dtd(head: bytes) -> bool:
    """Statutory returns never carry a DTD; one in the prolog is an entity-expansion or XXE attempt."""
    return bool(_XML_DTD.search(head))
