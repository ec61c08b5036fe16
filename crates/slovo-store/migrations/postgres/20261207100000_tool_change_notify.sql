-- Every change to a tool's row (import, approval, upgrade, disable, enable, revoke, and the
-- revision bump of a grant or secret change) notifies the channel `slovo_tool_changes` with the
-- tool's name, inside the changing transaction: PostgreSQL delivers the notification at commit
-- and drops it on rollback, so every instance listening (`Store::listen_tool_changes`) hears
-- of exactly the committed changes, whichever instance, CLI or older version made them.
CREATE FUNCTION tools_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('slovo_tool_changes', OLD.name);
    ELSE
        PERFORM pg_notify('slovo_tool_changes', NEW.name);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tools_notify_change AFTER INSERT OR UPDATE OR DELETE ON tools
    FOR EACH ROW EXECUTE FUNCTION tools_notify_change();
