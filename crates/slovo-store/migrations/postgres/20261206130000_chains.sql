-- Chains (docs/chains.md). A step of a chain is an execution of its own tool that names the
-- chain's execution as its parent, so the records of one chain call can be read together.
ALTER TABLE executions ADD COLUMN parent_execution_id TEXT;
CREATE INDEX executions_by_parent ON executions (parent_execution_id, started_at);

-- What a person saw when approving a chain: for each tool a step reaches, the grant that tool
-- held then. A call of the chain goes ahead only while every step tool still holds exactly
-- that grant and is active; disabling or revoking a step tool sets `invalidated_at`, so the
-- chain needs a new approval even after the tool is enabled again.
CREATE TABLE chain_pins (
    chain_grant_id  BIGINT NOT NULL,
    chain           TEXT NOT NULL,
    step_tool       TEXT NOT NULL,
    step_grant_id   BIGINT NOT NULL,
    invalidated_at  BIGINT,
    PRIMARY KEY (chain_grant_id, step_tool)
);
CREATE INDEX chain_pins_by_step_tool ON chain_pins (step_tool);
