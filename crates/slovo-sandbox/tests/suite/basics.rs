//! The contract: stdin, stdout, env, identity, status and accounting.

use serde_json::json;

use super::support::*;
use crate::require_root;

#[tokio::test]
async fn echoes_the_request_as_json() {
    require_root!();
    let sb = Sandbox::new();
    let o = sb.run(&sb.spec("echo", &["echo"])).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert_eq!(o.output, Some(json!({"capability": "probe", "arguments": {}})));
    assert_eq!(o.exit_code, Some(0));
    assert!(o.cpu_ms.is_some() && o.peak_memory_bytes.is_some(), "{o:#?}");
    assert!(o.sandbox_id.as_deref().unwrap_or("").starts_with("slovo-"));
}
