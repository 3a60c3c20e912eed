"""The filter model (`filters`): one validated set of filters, stated once as
predicates (`predicates`) and compiled by one compiler per backend (`compiler` is
their base; `polars_compiler`, `sql_compiler` for DuckDB, `arrow_compiler` for
pyarrow scan pushdown).
"""
