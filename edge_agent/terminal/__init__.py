"""The entrance terminal's own screen: a full-screen page for the box's HDMI screen (Chromium in
kiosk mode) with the hall clock, the camera preview with the face box and prompt, and each punch
within a second; and its voice. `screen.EntranceScreen` is what the agent holds; `punches` (pure)
says what a punch is, `board` keeps what the page shows, `preview` and `server` serve it."""

from edge_agent.terminal.screen import EntranceScreen

__all__ = ["EntranceScreen"]
