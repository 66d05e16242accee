"""Interfaces: the command line, the HTTP API and the web page, over one application service."""
