"""Parsing the YAML a person writes: alliance files and job specs, with JSON Schemas."""
