"""MediaNest's built-in integrations, one folder each, installed as ``medianest_plugins``."""
