"""Build-and-run profiles (data)."""
