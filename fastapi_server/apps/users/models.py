"""Tables of the users app."""

from __future__ import annotations
