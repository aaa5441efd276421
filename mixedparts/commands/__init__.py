"""One module per ``mixedparts`` subcommand (see :mod:`mixedparts.cli`)."""
