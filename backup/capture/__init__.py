"""What leaves the live database: the change-capture schema and triggers, the catalog of captured
tables, and cutting the live change log into segments. Builds on backup.storage only."""
