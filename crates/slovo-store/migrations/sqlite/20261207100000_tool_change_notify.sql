-- PostgreSQL only: the trigger that notifies other instances of tool changes. A SQLite
-- database has one process serving it, whose change feed polls the audit head instead.
SELECT 1;
