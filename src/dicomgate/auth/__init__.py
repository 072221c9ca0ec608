"""Authentication (JWT bearer, API keys) and the route → scope policy."""
