"""Everything that produces replies, behind one seam (`Backend`): the engine in this process, or a client
of an engine process (`llmtui serve`)."""
