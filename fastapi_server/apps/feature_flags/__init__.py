"""The feature flags app."""
