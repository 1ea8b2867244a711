"""Workspace secrets: values sealed with AES-GCM at rest, never returned by the API."""
