"""Serving a learned policy: the HTTP policy server, its decision log, and turning the log back into data."""
