"""One module per `pull-matrix` command; each defines a click command named `command`."""
