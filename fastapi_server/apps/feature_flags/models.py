"""Tables of the feature flags app."""

from __future__ import annotations
