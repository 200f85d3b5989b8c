"""vaxvault API: role-scoped GraphQL over the registry database."""
