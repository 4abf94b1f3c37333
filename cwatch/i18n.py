"""gettext catalogs read straight from their .po files (compiled in memory by Babel), so
the repository holds no binary .mo files and a translator edits one text file."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations


def load_translations(locale_dir: Path, language: str,
                      source_language: str = "en") -> NullTranslations:
    """The catalog locale_dir/<language>/LC_MESSAGES/messages.po; none (the source texts
    as they are) for the source language or a language without a catalog."""
    po_path = locale_dir / language / "LC_MESSAGES" / "messages.po"
    if language == source_language or not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)
