"""The search field of the video table."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input


class SearchBox(Input):
    """The search field: reached only with `/` (not by Tab), so keys typed for the app never
    land in it; Esc or Enter leaves it."""

    BINDINGS = [Binding("escape", "leave", "Leave search", show=False)]

    class Left(Message):
        pass

    def on_mount(self) -> None:
        self.can_focus = False

    def action_leave(self) -> None:
        self.app.query_one("#videos", DataTable).focus()

    def on_blur(self) -> None:
        self.post_message(self.Left())
