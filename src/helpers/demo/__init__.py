"""The embedded demo study area."""
