-- What the analysis of an imported proposal noted (the offline analysis or an LLM's), as JSON:
-- `{"by": "offline" | "llm:<model>", "notes": [{"capability": ..., "note": ...}]}`. Shown to
-- the person deciding, as the analysis's unverified words. NULL for versions not analysed.
ALTER TABLE tool_versions ADD COLUMN analysis TEXT;
