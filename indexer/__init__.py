"""photoseek's indexer side: catalog, models, vector index, decoding and the writer.

Importing this package stays cheap (no torch, no watchdog); submodules load what they need.
"""

__version__ = "0.1.0"
