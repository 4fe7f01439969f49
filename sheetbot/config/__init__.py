"""Configuration.

The YAML's models (models.py), loading and includes (load.py), and the workflows' output schemas (outputs.py).
"""
