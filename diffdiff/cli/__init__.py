"""The `diffdiff` command line: one module per verb, each exposing `register(subparsers)`."""
