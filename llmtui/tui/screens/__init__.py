"""Modal screens: editing text, settings, history, vocabulary."""
