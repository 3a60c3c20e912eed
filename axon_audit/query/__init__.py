"""The filter model (`filters`): one validated set of filters, compiled to polars, DuckDB SQL and pyarrow."""
