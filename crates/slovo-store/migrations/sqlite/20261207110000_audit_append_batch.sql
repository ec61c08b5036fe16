-- Nothing on SQLite: batched appends of calls' results are PostgreSQL's (see the PostgreSQL
-- migration of the same name); SQLite's call path has a writer of its own (`call_writer`).
SELECT 1;
