#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use pretty_assertions::assert_eq;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn in_dir(dir: &Path) -> LoadOptions {
    LoadOptions {
        default_data_dir: Some(dir.to_path_buf()),
        ..LoadOptions::default()
    }
}

#[test]
fn defaults_alone() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&env(&[]), in_dir(dir.path())).unwrap();
    assert_eq!(
        loaded.config,
        Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        }
    );
    assert_eq!(loaded.file, None);
    assert!(loaded.show().iter().all(|s| s.source == Source::Default));
}

#[test]
fn layers_apply_in_order_and_each_value_says_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slovo.toml"),
        "[server]\nmax_concurrent_calls = 8\nmax_queued_calls = 9\n\n[egress]\nalso_public = [\"192.168.1.20/32\"]\n",
    )
    .unwrap();
    let mut options = in_dir(dir.path());
    options
        .overrides
        .set("server.max_queued_calls", 11, "--max-queued-calls");
    let vars = env(&[
        ("SLOVO_EGRESS_ALSO_PUBLIC", "198.51.100.0/24, 10.1.2.3"),
        ("SLOVO_SERVER_MAX_QUEUED_CALLS", "10"),
        ("SLOVO_HTTP_ALLOW_PRIVATE", "1"),
        ("UNRELATED", "x"),
    ]);
    let loaded = load(&vars, options).unwrap();
    let c = &loaded.config;
    assert_eq!(c.server.max_concurrent_calls, 8);
    assert_eq!(c.server.max_queued_calls, 11);
    assert_eq!(
        c.egress.also_public,
        vec!["198.51.100.0/24".parse().unwrap(), "10.1.2.3/32".parse().unwrap()]
    );
    assert!(c.http.allow_private);
    let file = dir.path().join("slovo.toml");
    assert_eq!(
        loaded.source_of("server.max_concurrent_calls"),
        Source::File(file)
    );
    assert_eq!(
        loaded.source_of("server.max_queued_calls"),
        Source::Flag("--max-queued-calls".into())
    );
    assert_eq!(
        loaded.source_of("egress.also_public"),
        Source::Env("SLOVO_EGRESS_ALSO_PUBLIC".into())
    );
    assert_eq!(loaded.source_of("server.listen"), Source::Default);
}

#[test]
fn every_key_has_one_variable_that_sets_it() {
    let dir = tempfile::tempdir().unwrap();
    for (key, kind) in KEYS {
        let raw = match (key, kind) {
            (_, Kind::Bool) => "1",
            (_, Kind::Int) => "7",
            (&"server.listen", _) => "127.0.0.1:9999",
            (&"egress.also_public", _) => "198.51.100.7",
            (_, Kind::Str) => "/some/value",
            (_, Kind::List) => "a,b",
        };
        let var = env_name(key);
        let loaded =
            load(&env(&[(&var, raw)]), in_dir(dir.path())).unwrap_or_else(|e| panic!("{var}={raw}: {e}"));
        assert_eq!(loaded.source_of(key), Source::Env(var.clone()), "{var}");
        assert_ne!(
            lookup(&loaded.merged, key),
            lookup(&to_table(&Config::default()), key),
            "{var} changed nothing"
        );
    }
    // The documented names of the settings that existed before the file.
    for (key, var) in [
        ("data_dir", "SLOVO_DATA_DIR"),
        ("database.url", "SLOVO_DATABASE_URL"),
        ("sandbox.allow_weaker", "SLOVO_SANDBOX_ALLOW_WEAKER"),
        ("docker.registries", "SLOVO_DOCKER_REGISTRIES"),
        ("http.allow_private", "SLOVO_HTTP_ALLOW_PRIVATE"),
        ("egress.also_public", "SLOVO_EGRESS_ALSO_PUBLIC"),
        ("secret_key", "SLOVO_SECRET_KEY"),
        ("llm.base_url", "SLOVO_LLM_BASE_URL"),
    ] {
        assert_eq!(env_name(key), var);
    }
}

#[test]
fn every_default_value_has_a_key() {
    let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    for leaf in leaves(&to_table(&Config::default())) {
        assert!(known.contains(&leaf.as_str()), "{leaf} is not in KEYS");
    }
}

#[test]
fn unknown_keys_and_wrong_types_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slovo.toml");
    std::fs::write(&path, "[server]\nmax_concurent_calls = 8\n").unwrap();
    let err = load(&env(&[]), in_dir(dir.path())).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("max_concurent_calls"), "{err}");

    std::fs::write(&path, "[egress]\nalso_public = [\"not-a-range\"]\n").unwrap();
    let err = load(&env(&[]), in_dir(dir.path())).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("not-a-range"), "{err}");

    std::fs::write(&path, "[sandbox]\nallow_weaker = \"yes\"\n").unwrap();
    let err = load(&env(&[]), in_dir(dir.path())).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("allow_weaker"), "{err}");

    std::fs::write(&path, "data_dir = \"/elsewhere\"\n").unwrap();
    let err = load(&env(&[]), in_dir(dir.path())).unwrap_err();
    assert!(matches!(err, ConfigError::DataDirInDataDir { .. }), "{err}");
}

#[test]
fn bad_variables_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (var, raw) in [
        ("SLOVO_SERVER_MAX_CONCURRENT_CALLS", "many"),
        ("SLOVO_SANDBOX_ALLOW_WEAKER", "perhaps"),
        ("SLOVO_EGRESS_ALSO_PUBLIC", "10.0.0.0/99"),
        ("SLOVO_SERVER_LISTEN", "localhost"),
    ] {
        let err = load(&env(&[(var, raw)]), in_dir(dir.path())).unwrap_err();
        assert!(err.to_string().contains(var), "{var}: {err}");
    }
}

#[test]
fn a_named_config_file_must_exist_and_may_set_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my.toml");
    let options = LoadOptions {
        config_file: Some(path.clone()),
        ..LoadOptions::default()
    };
    assert!(matches!(
        load(&env(&[]), options.clone()).unwrap_err(),
        ConfigError::Read { .. }
    ));
    std::fs::write(&path, "data_dir = \"/srv/slovo\"\n").unwrap();
    let loaded = load(&env(&[]), options).unwrap();
    assert_eq!(loaded.config.data_dir, PathBuf::from("/srv/slovo"));
    // The flag still wins.
    let mut options = LoadOptions {
        config_file: Some(path),
        ..LoadOptions::default()
    };
    options.overrides.set("data_dir", "/flag/dir", "--data-dir");
    assert_eq!(
        load(&env(&[]), options).unwrap().config.data_dir,
        PathBuf::from("/flag/dir")
    );
}

#[test]
fn the_data_directory_decides_which_file_is_read() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(
        b.path().join("slovo.toml"),
        "[server]\nmax_concurrent_calls = 3\n",
    )
    .unwrap();
    let vars = env(&[("SLOVO_DATA_DIR", b.path().to_str().unwrap())]);
    let loaded = load(&vars, in_dir(a.path())).unwrap();
    assert_eq!(loaded.config.data_dir, b.path());
    assert_eq!(loaded.config.server.max_concurrent_calls, 3);
}

#[test]
fn secrets_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let vars = env(&[
        (
            "SLOVO_SECRET_KEY",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ),
        (
            "SLOVO_DATABASE_URL",
            "postgres://slovo:hunter2@db.example:5432/slovo",
        ),
    ]);
    let shown = load(&vars, in_dir(dir.path())).unwrap().show();
    let text = format!("{shown:?}");
    assert!(!text.contains("hunter2") && !text.contains("00112233"), "{text}");
    let url = shown.iter().find(|s| s.key == "database.url").unwrap();
    assert_eq!(url.value, "\"postgres://slovo:<redacted>@db.example:5432/slovo\"");
}

#[test]
fn docker_host_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(
        &env(&[("DOCKER_HOST", "tcp://127.0.0.1:2375")]),
        in_dir(dir.path()),
    )
    .unwrap();
    assert_eq!(loaded.config.docker.host.as_deref(), Some("tcp://127.0.0.1:2375"));
    assert_eq!(loaded.source_of("docker.host"), Source::Env("DOCKER_HOST".into()));
}

#[test]
fn the_fetch_sandbox_limits_are_set_in_the_mcp_section_and_shown_with_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slovo.toml");
    std::fs::write(&file, "[mcp]\nfetch_timeout_s = 20\nfetch_memory_mb = 512\n").unwrap();
    let vars = env(&[("SLOVO_MCP_FETCH_PIDS", "64")]);
    let loaded = load(&vars, in_dir(dir.path())).unwrap();
    let mcp = &loaded.config.mcp;
    assert_eq!(
        (
            mcp.fetch_timeout_s,
            mcp.fetch_memory_mb,
            mcp.fetch_pids,
            mcp.fetch_storage_mb
        ),
        (20, 512, 64, 2048)
    );
    let shown: BTreeMap<String, (String, Source)> = loaded
        .show()
        .into_iter()
        .map(|s| (s.key, (s.value, s.source)))
        .collect();
    assert_eq!(
        shown["mcp.fetch_timeout_s"],
        ("20".to_string(), Source::File(file.clone()))
    );
    assert_eq!(
        shown["mcp.fetch_pids"],
        ("64".to_string(), Source::Env("SLOVO_MCP_FETCH_PIDS".into()))
    );
    assert_eq!(
        shown["mcp.fetch_storage_mb"],
        ("2048".to_string(), Source::Default)
    );

    // A misspelt limit is an error naming the file, the line and the key, not a default.
    std::fs::write(&file, "[mcp]\nfetch_timeout_s = 20\nfetch_memory = 512\n").unwrap();
    let err = load(&env(&[]), in_dir(dir.path())).unwrap_err().to_string();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("line 3") && err.contains("fetch_memory"),
        "{err}"
    );
    std::fs::write(&file, "[mcp]\nfetch_timeout_s = \"soon\"\n").unwrap();
    let err = load(&env(&[]), in_dir(dir.path())).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("fetch_timeout_s"), "{err}");
}
