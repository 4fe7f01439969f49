"""Configuration: the YAML, from file to validated models.

models.py is the contract (board, providers, workflows) built from fields.py; watching.py holds notify, alerts
and escalation; yaml_file.py reads one file within its caps; load.py resolves includes; checks.py adds the
checks pydantic cannot make; outputs.py turns a workflow's `outputs:` into a schema and checks answers.
"""
