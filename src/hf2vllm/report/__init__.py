"""Views of a comparison: ``schema`` (the Pydantic truth), ``terminal`` (Rich), ``json_file`` (disk)."""
