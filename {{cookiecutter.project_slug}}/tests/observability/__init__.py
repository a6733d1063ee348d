"""The observability option's signals, each proven against a real receiver on loopback."""
