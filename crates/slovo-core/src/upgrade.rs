//! Upgrades: what a new version changes in the program that runs, and whether that needs a
//! person's approval.
//!
//! A grant bounds what a sandbox may reach ([`Permissions::widenings_over`] decides whether a
//! new request still fits), but a grant does not name the program: a new command, module,
//! image, bundle or `base_url` inside the same grant is a different program, and secrets
//! follow the tool's *name*, not its version. So a new version whose program differs from the
//! serving one must be approved again whenever the program could send something out: when the
//! grant reaches any network, or when the tool holds secrets (whose values the new program
//! would receive). A tool with neither can only read its arguments and its own `/data` and
//! answer its caller, which the serving version could already do; its upgrades still activate
//! at once, with the changes on the record.
//!
//! [`Permissions::widenings_over`]: crate::permissions::Permissions::widenings_over

use std::fmt;

use serde::Serialize;

use crate::manifest::{Execution, Manifest};
use crate::permissions::{Grant, Widening};

/// What one version runs: its manifest, the bundle its files came from and, once installed,
/// the Docker image the install pinned.
#[derive(Debug, Clone, Copy)]
pub struct Program<'a> {
    /// The version's manifest.
    pub manifest: &'a Manifest,
    /// SHA-256 of the bundle the version was imported from (process and wasm tools).
    pub bundle_digest: Option<&'a str>,
    /// The image id a Docker install pinned, when the version was installed.
    pub image_id: Option<&'a str>,
}

/// One way in which a new version runs something other than the serving one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What changed, as named in the canonical manifest (`execution.command`,
    /// `api_requirements.base_url`, …), or `bundle` for the bundle's content digest and
    /// `image_id` for the Docker image an install pinned.
    pub field: &'static str,
    /// What the serving version has (`None`: nothing).
    pub serving: Option<String>,
    /// What the new version has (`None`: nothing).
    pub proposed: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
        write!(
            f,
            "{}: serving {}, proposed {}",
            self.field,
            show(&self.serving),
            show(&self.proposed)
        )
    }
}

/// The execution's fields that decide what runs, as text for the record (`None`: the field
/// does not apply to this execution type).
#[derive(Debug, Default)]
struct ExecutionFields {
    command: Option<String>,
    system_paths: Option<String>,
    module: Option<String>,
    image: Option<String>,
    entrypoint: Option<String>,
    transport: Option<String>,
    env: Option<String>,
    secret_env: Option<String>,
    tool_names: Option<String>,
    url: Option<String>,
    headers: Option<String>,
    secret_headers: Option<String>,
    steps: Option<String>,
    result: Option<String>,
}

/// `v` as compact JSON, the form the record shows.
fn json<T: Serialize + ?Sized>(v: &T) -> Option<String> {
    serde_json::to_string(v).ok()
}

/// Every variant and every field named, with no wildcard: a new execution type or field does
/// not compile until it says whether it changes what runs.
fn execution_fields(ex: Option<&Execution>) -> ExecutionFields {
    match ex {
        None | Some(Execution::Http) => ExecutionFields::default(),
        Some(Execution::Process {
            command,
            system_paths,
        }) => ExecutionFields {
            command: json(command),
            system_paths: Some(system_paths.to_string()),
            ..ExecutionFields::default()
        },
        Some(Execution::Wasm { module }) => ExecutionFields {
            module: Some(module.clone()),
            ..ExecutionFields::default()
        },
        Some(Execution::Docker { image, entrypoint }) => ExecutionFields {
            image: Some(image.clone()),
            entrypoint: entrypoint.as_ref().and_then(json),
            ..ExecutionFields::default()
        },
        Some(Execution::Chain { steps, result }) => ExecutionFields {
            steps: json(steps),
            result: json(result),
            ..ExecutionFields::default()
        },
        Some(Execution::Mcp {
            transport,
            command,
            image,
            system_paths,
            env,
            secret_env,
            tool_names,
            url,
            headers,
            secret_headers,
        }) => ExecutionFields {
            command: json(command),
            image: image.clone(),
            system_paths: Some(system_paths.to_string()),
            transport: json(transport),
            env: json(env),
            secret_env: json(secret_env),
            tool_names: json(tool_names),
            url: url.clone(),
            headers: json(headers),
            secret_headers: json(secret_headers),
            ..ExecutionFields::default()
        },
    }
}

/// Each field that decides what runs, with its value for `p` (`None` where the field does not
/// apply, as a module does not to a process tool). Changing the execution type therefore also
/// shows each field that appears or disappears.
fn fields(p: &Program<'_>) -> [(&'static str, Option<String>); 20] {
    let m = p.manifest;
    let ex = m.execution.as_ref();
    let e = execution_fields(ex);
    let api = m.api_requirements.as_ref();
    [
        ("execution.type", ex.map(|e| e.kind().to_string())),
        ("execution.command", e.command),
        ("execution.system_paths", e.system_paths),
        ("execution.module", e.module),
        ("execution.image", e.image),
        ("execution.entrypoint", e.entrypoint),
        ("execution.transport", e.transport),
        ("execution.env", e.env),
        ("execution.secret_env", e.secret_env),
        ("execution.tool_names", e.tool_names),
        ("execution.url", e.url),
        ("execution.headers", e.headers),
        ("execution.secret_headers", e.secret_headers),
        ("execution.steps", e.steps),
        ("execution.result", e.result),
        ("image_id", p.image_id.map(str::to_string)),
        ("bundle", p.bundle_digest.map(str::to_string)),
        ("api_requirements.base_url", api.map(|a| a.base_url.clone())),
        (
            "api_requirements.auth_type",
            // Absent and `none` send the same thing: no credential.
            api.and_then(|a| a.auth_type.clone()).filter(|t| t != "none"),
        ),
        (
            "api_requirements.auth_header",
            api.and_then(|a| a.auth_header.clone()),
        ),
    ]
}

/// Every way in which `new` runs something other than `old`: the execution type, a process
/// tool's command and `system_paths`, a wasm tool's module, a Docker tool's image and
/// entrypoint, the bundle's content digest (the code itself), the Docker image id an install
/// pinned (compared only when both versions have one), and an HTTP tool's `base_url` and
/// credential header (`auth_type`, `auth_header`). Descriptions, capabilities and permissions
/// are not part of it: permissions are compared with the grant, and the rest changes what the
/// tool is asked, not what answers.
pub fn changes_what_runs(old: &Program<'_>, new: &Program<'_>) -> Vec<Change> {
    fields(old)
        .into_iter()
        .zip(fields(new))
        .filter(|((field, serving), (_, proposed))| {
            // A pin exists only after an install: an uninstalled version says nothing about it.
            let unknown = *field == "image_id" && (serving.is_none() || proposed.is_none());
            !unknown && serving != proposed
        })
        .map(|((field, serving), (_, proposed))| Change {
            field,
            serving,
            proposed,
        })
        .collect()
}

/// True when a new program under this grant could send something out: the grant reaches a
/// network, or the tool holds secrets that the program would be given.
pub fn program_changes_need_approval(grant: &Grant, holds_secrets: bool) -> bool {
    grant.allows_network() || holds_secrets
}

/// The upgrade rule: a new version of an approved tool replaces the serving one without a
/// person only when it asks for no more than `grant` and, if the tool could send something
/// out (see [`program_changes_need_approval`]), runs the same program.
pub fn upgrade_needs_approval(
    widenings: &[Widening],
    changes: &[Change],
    grant: &Grant,
    holds_secrets: bool,
) -> bool {
    !widenings.is_empty() || (!changes.is_empty() && program_changes_need_approval(grant, holds_secrets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;
    use crate::permissions::{Narrowing, Permissions};
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    fn manifest(version: &str, edit: impl FnOnce(&mut Value)) -> Manifest {
        let mut v = json!({
            "name": "t", "version": version, "description": "d",
            "capabilities": [{"name": "c", "description": "d", "parameters": {"type": "object"}}],
            "permissions": {"network_allow": ["api.example.org"]},
            "api_requirements": {"base_url": "https://api.example.org", "auth_type": "api_key",
                                 "auth_header": "X-Key"},
            "execution": {"type": "http"}
        });
        edit(&mut v);
        parse_manifest("t.json", v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn program(m: &Manifest) -> Program<'_> {
        Program {
            manifest: m,
            bundle_digest: None,
            image_id: None,
        }
    }

    fn changed(old: &Manifest, new: &Manifest) -> Vec<&'static str> {
        changes_what_runs(&program(old), &program(new))
            .into_iter()
            .map(|c| c.field)
            .collect()
    }

    #[test]
    fn same_program_with_other_words_is_no_change() {
        let old = manifest("1.0.0", |_| {});
        let new = manifest("1.1.0", |v| {
            v["description"] = json!("something else");
            v["capabilities"][0]["description"] = json!("other");
            v["permissions"]["memory_limit_mb"] = json!(64);
        });
        assert_eq!(changed(&old, &new), Vec::<&str>::new());
    }

    #[test]
    fn a_chain_calling_other_steps_is_a_change() {
        let chain = |call: &str| {
            let call = call.to_string();
            manifest("1.0.0", move |v| {
                v["capabilities"][0]["parameters"] =
                    json!({"type": "object", "properties": {"city": {"type": "string"}}});
                v["permissions"] = json!({"timeout_s": 20});
                v.as_object_mut().map(|o| o.remove("api_requirements"));
                v["execution"] = json!({"type": "chain",
                    "steps": [{"id": "w", "call": call, "with": {"city": "$.input.city"}}],
                    "result": "$.steps.w.output"});
            })
        };
        let old = chain("weather.forecast");
        assert_eq!(changed(&old, &chain("weather.forecast")), Vec::<&str>::new());
        assert_eq!(changed(&old, &chain("mailer.send")), vec!["execution.steps"]);
    }

    #[test]
    fn http_target_and_credential_placement_are_changes() {
        let old = manifest("1.0.0", |_| {});
        let new = manifest("1.1.0", |v| {
            v["api_requirements"]["base_url"] = json!("https://api.example.org/other");
        });
        let c = changes_what_runs(&program(&old), &program(&new));
        assert_eq!(
            c,
            vec![Change {
                field: "api_requirements.base_url",
                serving: Some("https://api.example.org".into()),
                proposed: Some("https://api.example.org/other".into()),
            }]
        );
        assert_eq!(
            c[0].to_string(),
            "api_requirements.base_url: serving https://api.example.org, proposed https://api.example.org/other"
        );

        let new = manifest("1.1.0", |v| {
            v["api_requirements"]["auth_header"] = json!("X-Other");
        });
        assert_eq!(changed(&old, &new), vec!["api_requirements.auth_header"]);
        let new = manifest("1.1.0", |v| {
            v["api_requirements"]["auth_type"] = json!("bearer");
            v["api_requirements"]
                .as_object_mut()
                .map(|o| o.remove("auth_header"));
        });
        assert_eq!(
            changed(&old, &new),
            vec!["api_requirements.auth_type", "api_requirements.auth_header"]
        );
        // Absent and `none` both mean no credential.
        let a = manifest("1.0.0", |v| {
            v["api_requirements"] = json!({"base_url": "https://a.example.org"})
        });
        let b = manifest("1.1.0", |v| {
            v["api_requirements"] = json!({"base_url": "https://a.example.org", "auth_type": "none"})
        });
        assert_eq!(changed(&a, &b), Vec::<&str>::new());
    }

    #[test]
    fn commands_modules_images_and_bundles_are_changes() {
        let process = |cmd: Value, sys: bool| {
            move |v: &mut Value| {
                v["execution"] = json!({"type": "process", "command": cmd, "system_paths": sys});
            }
        };
        let old = manifest("1.0.0", process(json!(["bin/run"]), false));
        let new = manifest("1.1.0", process(json!(["bin/run", "--all"]), false));
        assert_eq!(changed(&old, &new), vec!["execution.command"]);
        let new = manifest("1.1.0", process(json!(["bin/run"]), true));
        assert_eq!(changed(&old, &new), vec!["execution.system_paths"]);

        let same = manifest("1.1.0", process(json!(["bin/run"]), false));
        let c = changes_what_runs(
            &Program {
                bundle_digest: Some("aaaa"),
                ..program(&old)
            },
            &Program {
                bundle_digest: Some("bbbb"),
                ..program(&same)
            },
        );
        assert_eq!(
            c,
            vec![Change {
                field: "bundle",
                serving: Some("aaaa".into()),
                proposed: Some("bbbb".into()),
            }]
        );

        let wasm = |m: &str| {
            let m = m.to_string();
            move |v: &mut Value| v["execution"] = json!({"type": "wasm", "module": m})
        };
        assert_eq!(
            changed(
                &manifest("1.0.0", wasm("a.wasm")),
                &manifest("1.1.0", wasm("b.wasm"))
            ),
            vec!["execution.module"]
        );

        let docker = |image: &str, ep: Option<Value>| {
            let image = image.to_string();
            move |v: &mut Value| {
                v["execution"] = json!({"type": "docker", "image": image});
                if let Some(ep) = ep {
                    v["execution"]["entrypoint"] = ep;
                }
            }
        };
        let old = manifest("1.0.0", docker("x/y:1", None));
        assert_eq!(
            changed(&old, &manifest("1.1.0", docker("x/y:2", None))),
            vec!["execution.image"]
        );
        assert_eq!(
            changed(
                &old,
                &manifest("1.1.0", docker("x/y:1", Some(json!(["/bin/sh"]))))
            ),
            vec!["execution.entrypoint"]
        );
        // The pinned image: compared only when both versions were installed.
        let pinned = |m, id| Program {
            image_id: id,
            ..program(m)
        };
        let new = manifest("1.1.0", docker("x/y:1", None));
        let ids = |a, b| -> Vec<&str> {
            changes_what_runs(&pinned(&old, a), &pinned(&new, b))
                .into_iter()
                .map(|c| c.field)
                .collect()
        };
        assert_eq!(ids(Some("sha256:1"), Some("sha256:2")), vec!["image_id"]);
        assert_eq!(ids(Some("sha256:1"), Some("sha256:1")), Vec::<&str>::new());
        assert_eq!(ids(Some("sha256:1"), None), Vec::<&str>::new());

        // Another execution type: the type and every field that appears or disappears.
        assert_eq!(
            changed(&old, &manifest("1.1.0", |_| {})),
            vec!["execution.type", "execution.image"]
        );
        // No execution at all (importable, not callable) is a type of its own.
        let none = manifest("1.1.0", |v| {
            let o = v.as_object_mut().unwrap_or_else(|| panic!("an object"));
            o.remove("execution");
            o.remove("api_requirements");
        });
        assert_eq!(none.execution, None);
        assert_eq!(
            changed(&old, &none),
            vec![
                "execution.type",
                "execution.image",
                "api_requirements.base_url",
                "api_requirements.auth_type",
                "api_requirements.auth_header"
            ]
        );
    }

    #[test]
    fn program_changes_wait_only_where_something_could_leave() {
        let grant = |perm: Permissions| {
            Grant::narrowed(&perm, &Narrowing::default()).unwrap_or_else(|e| panic!("{e}"))
        };
        let sealed = grant(Permissions::default());
        let listed = grant(Permissions {
            network_allow: vec!["api.example.org".parse().unwrap_or_else(|e| panic!("{e}"))],
            ..Permissions::default()
        });
        let internet = grant(Permissions {
            internet_access: true,
            ..Permissions::default()
        });
        let change = [Change {
            field: "bundle",
            serving: Some("a".into()),
            proposed: Some("b".into()),
        }];
        let wider = [Widening {
            field: "memory_limit_mb",
            granted: "1".into(),
            requested: "2".into(),
        }];
        // Sealed (no network, no secrets): a new program activates at once.
        assert!(!upgrade_needs_approval(&[], &change, &sealed, false));
        // Any network, or any secret: it waits.
        assert!(upgrade_needs_approval(&[], &change, &listed, false));
        assert!(upgrade_needs_approval(&[], &change, &internet, false));
        assert!(upgrade_needs_approval(&[], &change, &sealed, true));
        // The same program inside the grant activates; asking for more always waits.
        assert!(!upgrade_needs_approval(&[], &[], &internet, true));
        assert!(upgrade_needs_approval(&wider, &[], &sealed, false));
    }
}
