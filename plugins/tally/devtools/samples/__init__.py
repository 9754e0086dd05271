"""Renderers writing sample statement files in each source's format: data in, bytes out."""
