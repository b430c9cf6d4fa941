"""The ``docqa`` command: thin typer commands that parse, call one library function and render with rich."""
