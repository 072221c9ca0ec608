"""The audit trail: who did what to which resource, when, from where, and how it ended."""
