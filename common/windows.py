"""The default length of an emotion window, one fact for the readers and the CLI's options (which
must not import the dataset package just to show it in `--help`)."""

DEFAULT_WINDOW = 64  # frames per emotion window
