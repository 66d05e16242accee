"""Index stage: embeddings, the vector index and catalog behind one Store interface, and search.

Imports records from ``ingest``; knows nothing of HTTP or the command line.
"""
