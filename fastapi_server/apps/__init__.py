"""Feature-per-folder apps."""
