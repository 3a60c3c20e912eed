"""The event model.

`enums` (operation, status), `timestamps` (UTC microseconds), `ids` (event ids),
`coerce` (field checks), `row` (the row tuple's layout), `event` (`AuditEvent`),
and `schema` (the one column list, its Arrow/polars schema, batch normalization).
"""
