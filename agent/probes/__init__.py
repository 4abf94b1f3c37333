"""One probe per file; each returns a dict of protocol fields and never raises on
what the platform cannot give (that field is left out or null)."""
