"""Operator configuration: the frozen schema (schema.py) and the YAML files that fill it (loading.py, template.py)."""
