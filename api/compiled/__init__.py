"""The compiled read path: validated GraphQL read operations turned into one SQL statement that
builds the response JSON in PostgreSQL, with row scope, masking and the audit row inside it.

Everything it does not cover falls back to the strawberry executor, which stays the reference:
tests/api/test_compiled_differential.py holds the two paths to the same answers and audit rows.
"""
