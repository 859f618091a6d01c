"""The model card banner above the verdict table: what the model was trained on, and its
warnings (synthetic data, few videos, untrained) where nobody can miss them."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...errors import TruthnetError


def card_warnings(model: str | None, cache: dict, store, rows) -> tuple[str, list[str]]:
    """``model``'s card line, and the warnings of it and of every model whose verdicts are in
    ``rows`` (a scan keeps the card of the model it used).  ``cache``: model path -> card."""
    from ...model import read_card
    from ...modelcard import ModelCard

    line, warnings = "no model (run truthnet demo, or pass --model)", []
    if model:
        if model not in cache:
            try:
                cache[model] = read_card(model)
            except TruthnetError as exc:
                cache[model] = exc
        card = cache[model]
        if isinstance(card, ModelCard):
            line, warnings = f"model card: {card.summary()}", card.warnings()
        else:
            line = f"model: {card}"
    for i in sorted({r.scan_id for r in rows if r.scan_id}, reverse=True):  # the scans on screen, newest first
        s = store.scan(i) or {}
        warnings += [w for w in ((s.get("model_card") or {}).get("warnings") or []) if w not in warnings]
    return line, warnings


class ModelCardBanner(Static):
    """One line of card, preceded by a highlighted line per warning."""

    def show(self, line: str, warnings: list[str]) -> None:
        text = Text()
        for w in warnings:
            text.append(f"⚠ {w}\n", style="bold")
        text.append(line)
        self.update(text)
        self.set_class(bool(warnings), "warn")
