"""Target descriptions (data)."""
