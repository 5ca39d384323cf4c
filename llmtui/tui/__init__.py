"""The Textual layer: a thin skin over llmtui.engine and llmtui.store."""
