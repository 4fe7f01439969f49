"""Commands.

The argument parser and what each command does (demo, check, show, trial); it parses, calls and prints.
"""
