-- Nothing on SQLite: writing calls' results and events in one statement on a known chain head
-- is PostgreSQL's (see the PostgreSQL migration of the same name); SQLite's call path has a
-- writer of its own (`call_writer`), which does the same in one command.
SELECT 1;
