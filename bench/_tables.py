"""The markdown table every benchmark prints."""

from __future__ import annotations


def table(title: str, header: list[str], rows: list[list[str]], note: str = "") -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if note:
        print(f"\n{note}")
