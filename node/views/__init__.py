"""Text views of Mirror's results, shared by the CLI and the REPL: pure functions
from a result to the lines a terminal shows (the web interface has its own)."""
