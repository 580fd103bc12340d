"""Views of a ``BenchReport``: JSON (the schema itself), CSV, a Rich table, HTML with inline SVG, markdown."""
