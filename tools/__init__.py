"""Command-line tools of the pack: the headless runner and tiny stand-in models."""
