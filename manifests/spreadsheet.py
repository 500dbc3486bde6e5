"""CSV cells that a spreadsheet would run as formulas (`=HYPERLINK(...)`, `+cmd`, `-2+3`, `@SUM`, a leading tab
or carriage return) get a leading apostrophe in CSVs meant for people (rejects.csv), which spreadsheets show
as text; `restore` gives the exact value back to the toolkit's own readers. The manifest CSV is not treated
so: it is the machine contract training reads its captions from (see manifests/README.md)."""
from __future__ import annotations

import re

_FORMULA = re.compile(r"^'*[=+\-@\t\r]")  # apostrophes already there are escaped too, so restore is exact
_ESCAPED = re.compile(r"^'+[=+\-@\t\r]")


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text: an apostrophe before a leading = + - @ (tab, CR)."""
    return "'" + cell if _FORMULA.match(cell) else cell


def restore(cell: str) -> str:
    """The value ``neutralise`` was given."""
    return cell[1:] if _ESCAPED.match(cell) else cell
