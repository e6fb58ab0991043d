"""Helpers shared by the tests: small files in every supported format (`helpers.images`)."""
