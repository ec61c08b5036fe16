//! A `tools/call` result on the execution record: `structuredContent` is the JSON output,
//! otherwise text content is the text output (other content as the server sent it), and
//! `isError` makes the call a failure with the tool's own message. A result of the stateless
//! revision that is not `complete` (a request for input, a task) is a failure: this client
//! offers no input and runs no tasks.

use serde_json::Value;
use slovo_core::execution::ExecutionStatus;

use crate::process::Verdict;

/// Characters of a tool's error text kept in the record's error message.
const MAX_ERROR_CHARS: usize = 2000;

/// The verdict for a `tools/call` result.
pub(crate) fn verdict_of(result: &Value) -> Verdict {
    if let Some(kind) = result.get("resultType").and_then(Value::as_str)
        && kind != "complete"
    {
        return Verdict {
            status: ExecutionStatus::Failure,
            output: None,
            error: Some(format!(
                "the server answered with a result of type {kind:?}, which this client does not take (it offers no input and runs no tasks)"
            )),
        };
    }
    let content = result.get("content").and_then(Value::as_array);
    let text = content.and_then(|items| all_text(items));
    let output = match (result.get("structuredContent"), content, &text) {
        (Some(structured), _, _) if !structured.is_null() => Some(structured.clone()),
        (_, _, Some(t)) => Some(Value::String(t.clone())),
        (_, Some(items), None) => Some(Value::Array(items.clone())),
        _ => None,
    };
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let message = text.unwrap_or_else(|| "(the tool gave no text)".to_string());
        return Verdict {
            status: ExecutionStatus::Failure,
            output,
            error: Some(format!("the tool reported an error: {}", clip(&message))),
        };
    }
    Verdict {
        status: ExecutionStatus::Success,
        output,
        error: None,
    }
}

/// The text of `items` joined by newlines, if every item is text.
fn all_text(items: &[Value]) -> Option<String> {
    let texts = items
        .iter()
        .map(|item| match item.get("type").and_then(Value::as_str) {
            Some("text") => item.get("text").and_then(Value::as_str),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(texts.join("\n"))
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structured_content_is_the_output() {
        let v = verdict_of(&json!({
            "content": [{"type": "text", "text": "{\"sum\":3}"}],
            "structuredContent": {"sum": 3},
        }));
        assert_eq!(v.status, ExecutionStatus::Success);
        assert_eq!(v.output, Some(json!({"sum": 3})));
    }

    #[test]
    fn text_content_is_joined_text() {
        let v = verdict_of(&json!({"content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}
        ]}));
        assert_eq!(v.output, Some(json!("a\nb")));
    }

    #[test]
    fn other_content_is_kept_as_sent() {
        let items = json!([{"type": "text", "text": "a"}, {"type": "image", "data": "AA==", "mimeType": "image/png"}]);
        let v = verdict_of(&json!({"content": items}));
        assert_eq!(v.output, Some(items));
    }

    #[test]
    fn is_error_is_a_failure_with_the_tools_message() {
        let v = verdict_of(&json!({"content": [{"type": "text", "text": "no such file"}], "isError": true}));
        assert_eq!(v.status, ExecutionStatus::Failure);
        assert_eq!(
            v.error.as_deref(),
            Some("the tool reported an error: no such file")
        );
    }

    #[test]
    fn a_stateless_result_is_taken_only_when_complete() {
        let complete =
            verdict_of(&json!({"resultType": "complete", "content": [{"type": "text", "text": "ok"}]}));
        assert_eq!(complete.status, ExecutionStatus::Success);
        assert_eq!(complete.output, Some(json!("ok")));
        let asks = verdict_of(&json!({"resultType": "input_required", "inputRequests": {}}));
        assert_eq!(asks.status, ExecutionStatus::Failure);
        assert!(
            asks.error
                .as_deref()
                .unwrap_or_default()
                .contains("\"input_required\""),
            "{asks:?}"
        );
    }
}
