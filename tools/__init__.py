"""Developer tools for chatterd."""
