"""Persistence: settings (TOML) and conversations (JSON). Knows nothing of Textual."""
