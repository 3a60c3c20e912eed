"""Reading: what a read sees (`snapshot`), the read API (`api`), SQL (`sql`), export
folders (`archive`), the Parquet lake (`lake`), sources for the CLI and compliance
tools (`sources`).
"""
