"""Reports built from saved results only: tables, plots, HTML/Markdown summaries, provenance."""
