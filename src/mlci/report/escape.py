"""Escaping of untrusted text for GitHub-flavoured Markdown.

Data values, column names, branch names, pull-request titles, paths and messages reach the
report and the data-update pull request body. Any of them may come from someone outside the
trust boundary (see SECURITY.md), so every one is rendered as inert text:

- line breaks and other control characters become spaces: a `\\r` or `\\n` would end a table
  row, and `\\r<!--` opened an HTML comment that hid every later section;
- the characters that can open inline markup anywhere in a line are backslash-escaped
  (`\\ ` * _ [ ] < | & ~`): no emphasis, link, image, HTML tag or comment, entity, code
  span, strikethrough or table pipe. Block markup (`#`, `-`, `1.`, `>`) needs a line start,
  which a value never gets;
- GFM autolinks need no markup: `://` becomes `\\://` and `www.` becomes `www\\.` (neither is
  then linked), and an invisible word joiner follows every `@` (e-mail addresses).

`code()` renders a value as a code span (paths, refs, digests) with the same guarantees.
"""

from __future__ import annotations

import re
from typing import Any

# C0/C1 controls, DEL, and the Unicode line/paragraph separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_INLINE = frozenset("\\`*_[]<|&~")
_AUTOLINK = re.compile(r"(?i)(?<=www)\.|:(?=//)")
_WORD_JOINER = "\u2060"
MAX_CHARS = 500


def _clean(value: Any, limit: int) -> str:
    s = _CONTROL.sub(" ", "" if value is None else str(value)).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def text(value: Any, limit: int = MAX_CHARS) -> str:
    """`value` as plain inline text, safe in a table cell and in a paragraph."""
    s = _clean(value, limit)
    s = "".join("\\" + ch if ch in _INLINE else ch for ch in s)
    s = _AUTOLINK.sub(lambda m: "\\" + m.group(0), s)
    return s.replace("@", "@" + _WORD_JOINER)


def code(value: Any, limit: int = MAX_CHARS) -> str:
    """`value` as a code span: no markup inside; `|` escaped so a table row stays whole.

    Backticks cannot be escaped inside a code span, so the fence is one longer than the
    longest run of backticks in the value."""
    s = _clean(value, limit).replace("|", "\\|")
    if not s.strip():
        return text(value, limit) or "–"
    longest = max((len(r) for r in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or longest else ""
    return f"{fence}{pad}{s}{pad}{fence}"


# Mermaid labels: word characters, spaces and a few separators; quotes, backticks, brackets,
# commas, `%` (directives), `#` and `;` (entity codes) and line breaks can end the label, the
# chart or the code fence, so they become `_`.
_MERMAID_UNSAFE = re.compile(r"[^\w .+\-/()]")
_SAFE_URL = re.compile(r"^https://[A-Za-z0-9.-]+(?::\d+)?(?:/[A-Za-z0-9_.~/-]*)?(?:#[a-z-]+)?$")


def mermaid_label(value: Any, limit: int = 24) -> str:
    """`value` as a quoted label inside a Mermaid chart, unable to leave it."""
    s = _MERMAID_UNSAFE.sub("_", _clean(value, limit)) or "_"
    return f'"{s}"'


def link(label: Any, url: str) -> str:
    """A markdown link to one of mlci's own URLs (a run, a commit) when the URL has the plain
    https shape those have; otherwise the label alone, as text."""
    if not _SAFE_URL.match(url or ""):
        return text(label)
    return f"[{text(label)}]({url})"


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: a string starting like a formula (`= + - @`,
    or a tab or carriage return before one) gets a leading `'` (OWASP's advice for CSV
    injection). Numbers and other values pass unchanged, so a negative number stays one."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
