"""ConvScope's web server, HTTP API and command line; the network itself lives in model/."""

__version__ = "0.1.0"
