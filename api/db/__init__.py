"""Database access: connections, migrations, seed data."""
