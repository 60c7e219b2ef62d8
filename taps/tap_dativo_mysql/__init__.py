"""tap-dativo-mysql: MySQL and MariaDB tables to Singer (full table, incremental)."""
