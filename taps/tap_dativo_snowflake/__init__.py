"""tap-dativo-snowflake: Snowflake tables and views to Singer (full table, incremental)."""
