"""Patient cache: ORM model, queries, schemas, router and bulk import."""
