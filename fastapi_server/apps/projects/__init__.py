"""The projects app: projects and their members (a member may be an admin)."""
