"""Small shared plumbing every domain uses: UTC clock, gather-or-cancel, spooler, hashing."""
