"""Operator command lines: make train, make invoke, make cost."""
