"""The event model: enums, ids, time and value coercion (`event`), the one column list and its Arrow/polars schema, batch normalization (`schema`)."""
