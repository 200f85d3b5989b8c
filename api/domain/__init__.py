"""Domain functions the resolvers call: scoped reads, validated writes, the audit, the freeze."""
