//! Tables for people, JSON for scripts.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use serde_json::json;
use slovo_core::time::to_rfc3339;
use slovo_runtime::ExecutionView;
use slovo_runtime::{
    AuditReport, DiscoveryRequestView, ImportReport, TokenView, ToolStateView, ToolSummary, ToolView,
};

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

pub fn import(r: &ImportReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    let what = match r.outcome {
        slovo_runtime::ImportOutcome::New => "imported; waiting for approval",
        slovo_runtime::ImportOutcome::PendingReplaced => {
            "imported; replaces the version waiting for approval"
        }
        slovo_runtime::ImportOutcome::UpgradedInPlace => {
            "upgraded in place (asks for no more than was granted)"
        }
        slovo_runtime::ImportOutcome::UpgradePending => {
            "imported; waits for approval while the approved version keeps serving"
        }
        slovo_runtime::ImportOutcome::Reimported => "imported again after revocation; waiting for approval",
        slovo_runtime::ImportOutcome::Unchanged => "already imported; nothing changed",
    };
    println!("{} {}: {what}", r.tool, r.version);
    for w in &r.widenings {
        println!("  needs approval: {w}");
    }
    for c in &r.changes {
        println!("  runs differently: {c}");
    }
    Ok(())
}

pub fn mcp_import(r: &slovo_runtime::McpImportReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    import(&r.import, false)?;
    if let Some(package) = &r.package {
        let integrity = r
            .integrity
            .get("integrity")
            .or_else(|| r.integrity.get("sha256"))
            .or_else(|| r.integrity.get("image_id"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("-");
        println!("  package: {package} (integrity {integrity})");
    }
    for t in &r.tools {
        let renamed = if t.capability == t.tool {
            String::new()
        } else {
            format!(" (the server's {:?})", t.tool)
        };
        let claims = if t.annotations.is_null() {
            String::new()
        } else {
            format!("  the server claims (unverified): {}", t.annotations)
        };
        println!("  capability {}{renamed}{claims}", t.capability);
    }
    for s in &r.secrets {
        if r.secrets_stored.contains(s) {
            println!("  secret stored: {s} (given at import)");
        } else {
            println!("  secret to set: slovo secret set {} {s}", r.import.tool);
        }
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    Ok(())
}

pub fn tools(list: &[ToolSummary], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no tools (import one with `slovo tool import PATH`)");
        return Ok(());
    }
    let mut t = table(&["NAME", "VERSION", "STATUS", "RUNTIME", "CAPABILITIES"]);
    for s in list {
        let version = match (&s.version, &s.pending_version) {
            (Some(v), Some(p)) => format!("{v} (pending {p})"),
            (Some(v), None) => v.clone(),
            (None, _) => "-".into(),
        };
        let caps = if s.capabilities.len() > 4 {
            format!(
                "{}, … ({} in all)",
                s.capabilities[..3].join(", "),
                s.capabilities.len()
            )
        } else {
            s.capabilities.join(", ")
        };
        t.add_row(vec![
            s.name.clone(),
            version,
            s.status.to_string(),
            s.runtime.clone(),
            caps,
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn tool(v: &ToolView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(v);
    }
    println!("{}  [{}]", v.name, v.status);
    if let Some(d) = v.manifest.get("description").and_then(|d| d.as_str()) {
        println!("  {d}");
    }
    println!(
        "  serving: {}   pending approval: {}",
        v.active_version.as_deref().unwrap_or("-"),
        v.pending_version.as_deref().unwrap_or("-")
    );
    if let Some(e) = v.manifest.get("execution") {
        println!("  runtime: {e}");
    }
    let r = &v.requested;
    let g = v.granted.as_ref();
    let net = |internet: bool, hosts: &[slovo_core::HostPattern]| {
        if internet {
            "any public host".to_string()
        } else if hosts.is_empty() {
            "none".to_string()
        } else {
            hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut t = table(&["PERMISSION", "REQUESTED", "GRANTED"]);
    let granted = |f: &dyn Fn(&slovo_core::Grant) -> String| g.map(f).unwrap_or_else(|| "-".into());
    t.add_row(vec![
        "network".into(),
        net(r.internet_access, &r.network_allow),
        granted(&|g| net(g.internet_access, &g.network_allow)),
    ]);
    t.add_row(vec![
        "storage".into(),
        format!("{} MB", r.storage_quota_mb),
        granted(&|g| format!("{} MB", g.storage_quota_mb)),
    ]);
    t.add_row(vec![
        "memory".into(),
        format!("{} MB", r.memory_limit_mb),
        granted(&|g| format!("{} MB", g.memory_limit_mb)),
    ]);
    t.add_row(vec![
        "cpu".into(),
        format!("{}%", r.cpu_limit_percent),
        granted(&|g| format!("{}%", g.cpu_limit_percent)),
    ]);
    t.add_row(vec![
        "timeout".into(),
        format!("{} s", r.timeout_s),
        granted(&|g| format!("{} s", g.timeout_s)),
    ]);
    t.add_row(vec![
        "processes".into(),
        r.pids_limit.to_string(),
        granted(&|g| g.pids_limit.to_string()),
    ]);
    t.add_row(vec![
        "expires".into(),
        r.expires_at
            .map(|e| e.to_rfc3339())
            .unwrap_or_else(|| "never".into()),
        granted(&|g| {
            g.expires_at
                .map(|e| e.to_rfc3339())
                .unwrap_or_else(|| "never".into())
        }),
    ]);
    println!("{t}");
    for w in &v.pending_widenings {
        println!("  pending version asks for more: {w}");
    }
    for c in &v.pending_changes {
        println!("  pending version runs differently: {c}");
    }
    if let Some(caps) = v.manifest.get("capabilities").and_then(|c| c.as_array()) {
        println!("  capabilities:");
        for c in caps {
            println!(
                "    {:<24} {}",
                c["name"].as_str().unwrap_or_default(),
                c["description"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(chain) = &v.chain {
        chain_section(chain, &net);
    }
    println!("  versions:");
    for ver in &v.versions {
        println!(
            "    {:<12} {:<17} imported {}  {}",
            ver.version, ver.state, ver.imported_at, ver.source
        );
        if let Some(change) = &ver.tool_list_changed {
            println!(
                "      the server's tool list changed; waits for approval again: {}",
                change.difference
            );
        }
    }
    if let Some(vol) = &v.volume {
        let purged = vol
            .purged_at
            .map(|p| format!(" (purged {})", to_rfc3339(p)))
            .unwrap_or_default();
        println!("  state: {}{purged}", vol.path);
    }
    Ok(())
}

/// A chain's steps, the tools they reach with their grants, the union and the hints.
fn chain_section(c: &slovo_runtime::ChainView, net: &dyn Fn(bool, &[slovo_core::HostPattern]) -> String) {
    println!("  chain steps:");
    for s in &c.steps {
        let after = if s.after.is_empty() {
            "at once".to_string()
        } else {
            format!("after {}", s.after.iter().cloned().collect::<Vec<_>>().join(", "))
        };
        let when = s
            .when
            .as_deref()
            .map(|w| format!(", when {w}"))
            .unwrap_or_default();
        println!(
            "    {:<16} {:<32} {after}{when}, on error {:?}",
            s.id, s.call, s.on_error
        );
    }
    let mut t = table(&["STEP TOOL", "STATUS", "NETWORK", "MEMORY", "TIMEOUT"]);
    for tool in &c.tools {
        let g = tool.grant.as_ref();
        t.add_row(vec![
            tool.tool.clone(),
            tool.status.clone(),
            g.map(|g| net(g.internet_access, &g.network_allow))
                .unwrap_or_else(|| "-".into()),
            g.map(|g| format!("{} MB", g.memory_limit_mb))
                .unwrap_or_else(|| "-".into()),
            g.map(|g| format!("{} s", g.timeout_s))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    if let Some(u) = &c.union {
        t.add_row(vec![
            "(union)".into(),
            String::new(),
            net(u.internet_access, &u.network_allow),
            format!("{} MB", u.memory_limit_mb),
            format!("{} s", u.timeout_s),
        ]);
    }
    println!("{t}");
    println!(
        "  hints: read-only {}, destructive {}, open-world {}",
        c.hints.read_only, c.hints.destructive, c.hints.open_world
    );
    println!("  chain approval: {}", c.approval);
}

pub fn status(t: &ToolStateView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(t);
    }
    println!("{} is now {}", t.name, t.status);
    Ok(())
}

pub fn call_result(e: &ExecutionView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(e);
    }
    match &e.output {
        Some(serde_json::Value::String(s)) => println!("{s}"),
        Some(v) => println!("{}", serde_json::to_string_pretty(v)?),
        None => {}
    }
    if e.status != slovo_core::ExecutionStatus::Success {
        eprintln!(
            "call {}: {}{}{}",
            e.id,
            e.status,
            e.exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default(),
            e.error.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    Ok(())
}

pub fn executions(rows: &[ExecutionView], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&rows);
    }
    let mut t = table(&["ID", "STARTED", "TOOL", "CAPABILITY", "STATUS", "EXIT", "MS"]);
    for e in rows {
        t.add_row(vec![
            e.id.clone(),
            to_rfc3339(e.started_at),
            format!("{} {}", e.tool, e.version),
            e.capability.clone(),
            e.status.to_string(),
            e.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            e.duration_ms.map(|c| c.to_string()).unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn execution(e: &ExecutionView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(e);
    }
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    println!("execution {}", e.id);
    println!("  tool:        {} {} . {}", e.tool, e.version, e.capability);
    println!("  status:      {}", e.status);
    println!("  started:     {}", to_rfc3339(e.started_at));
    println!(
        "  finished:    {}",
        e.finished_at.map(to_rfc3339).unwrap_or_else(|| "-".into())
    );
    println!("  duration ms: {}", opt(e.duration_ms));
    println!("  exit code:   {}", opt(e.exit_code));
    println!("  cpu ms:      {}", opt(e.cpu_ms));
    println!("  peak memory: {}", opt(e.peak_memory_bytes));
    println!("  sandbox:     {}", e.sandbox_id.as_deref().unwrap_or("-"));
    if let Some(w) = &e.warm {
        println!(
            "  warm:        started {} ms and ready {} ms before the call; used for it alone",
            w.started_ms_before_call, w.ready_ms_before_call
        );
    }
    println!("  caller:      {}", e.actor);
    if let Some(p) = &e.parent_execution_id {
        println!("  chain call:  {p}");
    }
    if e.conversation_id.is_some() || e.turn_id.is_some() {
        println!(
            "  conversation: {} turn {}",
            e.conversation_id.as_deref().unwrap_or("-"),
            e.turn_id.as_deref().unwrap_or("-")
        );
    }
    println!("  arguments:   {}", e.arguments);
    if let Some(o) = &e.output {
        println!("  output:      {o}");
    }
    if let Some(err) = &e.error {
        println!("  error:       {err}");
    }
    if let Some(s) = &e.stderr {
        println!("  stderr:\n{s}");
    }
    Ok(())
}

pub fn audit(r: &AuditReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&json!({"ok": true, "events": r.events, "head_hash": r.head_hash,
            "checkpoints": r.checkpoints, "checkpoint_seq": r.checkpoint_seq,
            "unchecked_events": r.unchecked_events}));
    }
    println!("audit trail verified: {} events, head {}", r.events, r.head_hash);
    if r.checkpoints == 0 {
        println!("no signed checkpoint yet: nothing outside the database vouches for these events");
    } else {
        println!(
            "{} signed checkpoints; the newest covers event {} ({} events since)",
            r.checkpoints, r.checkpoint_seq, r.unchecked_events
        );
    }
    Ok(())
}

pub fn checkpoint(c: Option<&slovo_core::audit::checkpoint::Checkpoint>, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&json!({"written": c}));
    }
    match c {
        Some(c) => println!(
            "audit checkpoint {} written: event {}, hash {}",
            c.n, c.seq, c.hash
        ),
        None => println!("the newest audit checkpoint already covers the chain's head"),
    }
    Ok(())
}

pub fn new_token(t: &slovo_runtime::NewToken, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(t);
    }
    println!("{}", t.token);
    eprintln!(
        "token {} ({}) created; this is the only time it is shown",
        t.record.id, t.record.role
    );
    Ok(())
}

pub fn tokens(list: &[TokenView], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&list);
    }
    let mut t = table(&["ID", "ROLE", "LABEL", "CREATED", "LAST USED", "REVOKED"]);
    for r in list {
        t.add_row(vec![
            r.id.clone(),
            r.role.to_string(),
            r.label.clone().unwrap_or_default(),
            to_rfc3339(r.created_at),
            r.last_used_at.map(to_rfc3339).unwrap_or_default(),
            r.revoked_at.map(to_rfc3339).unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn instances(list: &[slovo_runtime::InstanceView], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&list);
    }
    let mut t = table(&["ID", "STATE", "HOST", "PID", "VERSION", "STARTED", "HEARTBEAT"]);
    for r in list {
        let id = if r.this {
            format!("{} (this)", r.id)
        } else {
            r.id.clone()
        };
        t.add_row(vec![
            id,
            r.state.to_string(),
            r.host.clone(),
            r.pid.to_string(),
            r.version.clone(),
            to_rfc3339(r.started_at),
            to_rfc3339(r.heartbeat_at),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn openapi_import(r: &slovo_runtime::OpenApiImport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    for i in &r.imports {
        import(i, false)?;
    }
    let rep = &r.report;
    println!(
        "  {} of {} operations became capabilities of {} tool(s) ({} filtered out, {} skipped, {} repairs)",
        rep.capabilities,
        rep.operations_total,
        rep.tools.len(),
        rep.filtered_out,
        rep.skipped.len(),
        rep.repairs.len()
    );
    if rep.tools.len() > 1 {
        for t in &rep.tools {
            println!(
                "  tool {} ({}): {} capabilities",
                t.name,
                t.group.as_deref().unwrap_or("-"),
                t.capabilities
            );
        }
    }
    println!("  analysis: {}", r.analysis);
    if !rep.hosts.is_empty() {
        println!("  network allow list requested: {}", rep.hosts.join(", "));
    }
    for s in &rep.secrets {
        for t in &rep.tools {
            println!(
                "  needs secret {:?} ({:?}): slovo secret set {} {}",
                s.name, s.scheme, t.name, s.name
            );
        }
    }
    for risk in &rep.risks {
        println!("  risk [{:?}] {}: {}", risk.level, risk.capability, risk.note);
    }
    for s in &rep.skipped {
        println!("  skipped {s}");
    }
    for repair in rep.repairs.iter().take(10) {
        println!("  repaired {repair}");
    }
    if rep.repairs.len() > 10 {
        println!(
            "  … and {} more repairs (--json shows all)",
            rep.repairs.len() - 10
        );
    }
    for w in rep.warnings.iter().take(10) {
        println!("  warning: {w}");
    }
    if rep.warnings.len() > 10 {
        println!(
            "  … and {} more warnings (--json shows all)",
            rep.warnings.len() - 10
        );
    }
    Ok(())
}

pub fn resolution(r: &slovo_runtime::ResolveOutcome, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    let res = &r.resolution;
    if !res.candidates.is_empty() {
        let mut t = table(&[
            "TOOL",
            "CAPABILITY",
            "STATUS",
            "SCORE",
            "FIT",
            "ARGUMENTS",
            "MISSING",
        ]);
        for c in &res.candidates {
            t.add_row(vec![
                c.tool.clone(),
                c.capability.clone(),
                c.status.clone(),
                format!("{:.2}", c.score),
                format!(
                    "{:.2} / {:.0}%{}",
                    c.normalized,
                    c.coverage * 100.0,
                    if c.confident { "" } else { " (weak)" }
                ),
                serde_json::Value::Object(c.arguments.clone()).to_string(),
                c.missing.join(", "),
            ]);
        }
        println!("{t}");
    }
    if let Some(j) = &r.decision.judgement {
        println!(
            "decided by the judge {} in {} ms: {}",
            j.model, j.elapsed_ms, j.reason
        );
    } else if let Some(why) = &r.decision.judge_error {
        println!("the judge gave no verdict ({why}); the offline decision stands");
    }
    if res.gap {
        println!(
            "gap: {}",
            res.gap_reason.as_deref().unwrap_or("no candidate is good enough")
        );
        if let Some(d) = &r.discovery {
            let what = if d.created { "opened" } else { "already open" };
            println!("discovery request {} {what} ({})", d.id, d.status);
        }
    }
    Ok(())
}

pub fn discovery_requests(list: &[DiscoveryRequestView], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no discovery requests");
        return Ok(());
    }
    let mut t = table(&["ID", "STATUS", "DESCRIPTION", "PROPOSAL", "UPDATED", "ERROR"]);
    for r in list {
        t.add_row(vec![
            r.id.clone(),
            r.status.to_string(),
            r.description.clone(),
            r.proposal_tool.clone().unwrap_or_default(),
            to_rfc3339(r.updated_at),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn discovery_run(run: &slovo_runtime::DiscoveryRun, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(run);
    }
    println!(
        "{} candidates in the sources ({} unusable files); {} requests processed",
        run.candidates,
        run.problems.len(),
        run.processed.len()
    );
    for r in &run.processed {
        match (&r.proposal_tool, &r.error) {
            (Some(tool), _) => println!("  {} found: proposal {tool} waits for approval", r.id),
            (None, Some(e)) => println!("  {} {}: {e}", r.id, r.status),
            (None, None) => println!("  {} {}", r.id, r.status),
        }
    }
    // The first few unusable sources, so a refused URL or a broken file is not silent.
    for p in run.problems.iter().take(5) {
        println!("  problem: {p}");
    }
    if run.problems.len() > 5 {
        println!(
            "  … and {} more problems (--json lists them all)",
            run.problems.len() - 5
        );
    }
    Ok(())
}

pub fn eval(report: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(report);
    }
    let c = &report["catalogue"];
    println!(
        "catalogue: {} candidates, {} capabilities ({} unusable files), loaded in {} ms",
        c["candidates"], c["capabilities"], c["problems"], c["load_ms"]
    );
    let mut t = table(&[
        "RULE",
        "CASES",
        "RECALL@1",
        "RECALL@5",
        "MRR",
        "GAP PRECISION",
        "GAP RECALL",
        "ANSWERED RIGHT",
    ]);
    for key in ["default_rule", "calibrated_rule", "unweighted_bm25_calibrated"] {
        let r = &report[key];
        let f = |k: &str| format!("{:.3}", r[k].as_f64().unwrap_or(0.0));
        t.add_row(vec![
            format!(
                "{} (norm ≥ {:.3}, coverage ≥ {:.2})",
                key.trim_end_matches("_rule")
                    .replace("_calibrated", ", calibrated"),
                r["rule"]["min_normalized"].as_f64().unwrap_or(0.0),
                r["rule"]["min_coverage"].as_f64().unwrap_or(0.0)
            ),
            format!("{} ({} gaps)", r["cases"], r["unservable"]),
            f("recall_at_1"),
            f("recall_at_5"),
            f("mrr"),
            f("gap_precision"),
            f("gap_recall"),
            f("answered_correctly"),
        ]);
    }
    println!("{t}");
    println!(
        "resolve: p50 {:.1} µs, mean {:.1} µs per query",
        report["resolve_us"]["p50"].as_f64().unwrap_or(0.0),
        report["resolve_us"]["mean"].as_f64().unwrap_or(0.0)
    );
    if let Some(misses) = report["default_rule"]["misses"].as_array() {
        for m in misses {
            println!("  miss: {} → got {}, expected {}", m[0], m[1], m[2]);
        }
    }
    Ok(())
}

/// `slovo config show`: one line per key, `key = value  # source`; secrets redacted.
pub fn config(loaded: &slovo_config::Loaded, json: bool) -> anyhow::Result<()> {
    let shown = loaded.show();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "file": loaded.file,
                "values": shown,
            }))?
        );
        return Ok(());
    }
    match &loaded.file {
        Some(f) => println!("# configuration file: {}", f.display()),
        None => println!(
            "# no configuration file (slovo.toml in {} would be read)",
            loaded.config.data_dir.display()
        ),
    }
    let width = shown
        .iter()
        .map(|s| s.key.len() + s.value.len() + 3)
        .max()
        .unwrap_or(0);
    for s in &shown {
        let assignment = format!("{} = {}", s.key, s.value);
        println!("{assignment:<width$}  # {}", s.source);
    }
    Ok(())
}

pub fn bfcl_eval(report: &slovo_discovery::measure::LiveReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(report);
    }
    match &report.model {
        Some(m) => println!(
            "model {m}: {} texts embedded in {:.1} s",
            report.embedded, report.embed_seconds
        ),
        None => println!("no model: lexical ranking only (give --model-dir or set discovery.model_dir)"),
    }
    let g = &report.gap_model;
    println!(
        "gap model{}: {g}",
        if report.fitted {
            " (fitted on the development part)"
        } else {
            ""
        }
    );
    let mut t = table(&[
        "RANKER",
        "PART",
        "CASES",
        "RECALL@1",
        "RECALL@5",
        "MRR",
        "GAP ACCURACY",
        "NEVER-GAP ACC.",
        "GAP PRECISION",
        "GAP RECALL",
        "FALSE-GAP RATE",
    ]);
    for r in &report.rankers {
        for (part, f) in [("dev", &r.dev), ("held-out", &r.held_out)] {
            let n = |v: f64| format!("{v:.3}");
            t.add_row(vec![
                r.ranker.as_str().to_string(),
                part.to_string(),
                format!("{} ({} gaps)", f.cases, f.gaps),
                n(f.recall_at_1),
                n(f.recall_at_5),
                n(f.mrr),
                n(f.gap_accuracy),
                n(f.never_gap_accuracy),
                n(f.gap_precision),
                n(f.gap_recall),
                n(f.false_gap_rate),
            ]);
        }
    }
    println!("{t}");
    println!("BFCL live multiple + live irrelevance; recall and MRR over live multiple only.");
    for r in &report.rankers {
        println!(
            "live relevance (servable, no function named), {}: {:.0} of {} called a gap",
            r.ranker.as_str(),
            r.relevance_false_gap_rate * r.relevance_cases as f64,
            r.relevance_cases
        );
    }
    Ok(())
}
