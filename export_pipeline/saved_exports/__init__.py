"""Saved exports: definitions from YAML files and their partition windows."""
