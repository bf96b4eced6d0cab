"""Schema knowledge: source introspection, the mapping file, inference, DDL, order, conversion."""
