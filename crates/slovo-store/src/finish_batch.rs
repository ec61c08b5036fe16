//! PostgreSQL: calls' results and their audit events appended in batches (group commit).
//!
//! Why it exists: every audited write locks the chain head and keeps it until its commit is
//! durable, so appends are serialised across every instance sharing the database, and each one
//! costs its round trips plus a WAL flush under the lock. With the flush on a real disk (about
//! 0.5 ms here) that capped audited calls near 1,000 per second whatever the number of
//! instances (`docs/BENCHMARKS.md`, "Several instances"). Here the results that arrive while a
//! batch is being written wait for it, and the next batch writes them all in one transaction:
//! one head lock, one flush, and one round trip per statement rather than per call.
//!
//! What does not change: each call's result and its event commit together or not at all (the
//! batch is one transaction); a result is written only over a `running` record, and only such a
//! call gets an event; events are appended one statement each inside `audit_append`, so the
//! database's guards on the chain (`audit_events_extend_head`, `audit_head_follows`) check every
//! link exactly as before; a caller is answered only after the commit.
//!
//! On an instance's own chain (`audit_chain`) a batch is first written in one statement, its
//! own transaction (`audit_finish_calls`), with its events hashed against the head this store
//! knows ([`crate::audit_chain::KnownHead`]): the instance is the chain's only writer, so the
//! head does not need to be locked and read in round trips of their own first. The database
//! checks each link as above and refuses the whole statement when the head moved or a call is
//! no longer `running`; the batch is then written the locking way.
//!
//! A batch that the database refuses (rolled back) is retried call by call on the single-call
//! path, so that each caller gets its own answer (a batch never fails a call for another call's
//! reason). A batch whose connection failed is not retried: its commit may have happened, and
//! each caller hears that the database is unreachable, as it would have alone.
//!
//! Cancellation: a caller that goes away before its result is taken into a batch withdraws it.
//! A batch of several callers' results runs on a task of its own, so a caller that goes away
//! (even the one that started the batch) never leaves the others unanswered; a caller alone
//! writes in its own future, as without batching.

use std::collections::HashSet;
use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use slovo_core::audit::{AuditEvent, event_hash};
use sqlx::Row;
use tokio::sync::{Mutex, oneshot};

use crate::{ExecutionResult, FinishAudit, Result, Store, StoreError, Tx};

/// The most results one batch writes: bounds the transaction's size and the statements'
/// parameters (one JSON text each), while a full batch already makes the head lock's cost per
/// call small.
const MAX_BATCH: usize = 256;

/// A call's result and event, owned, waiting for a batch.
struct Pending {
    /// Tells this request from any other, for its caller to withdraw it.
    ticket: u64,
    id: String,
    result: ExecutionResult,
    kind: String,
    tool: Option<String>,
    actor: String,
    payload: Value,
    reply: oneshot::Sender<Result<AuditEvent>>,
}

pub(crate) struct FinishBatcher {
    queue: SyncMutex<Vec<Pending>>,
    next_ticket: AtomicU64,
    /// Held by whoever writes the current batch; the results queued meanwhile form the next.
    leader: Mutex<()>,
    /// Whether a batch bound for this instance's own chain is first tried in one statement on
    /// the head this store knows (see [`write_on_known_head`]).
    on_known_head: bool,
}

impl std::fmt::Debug for FinishBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishBatcher").finish_non_exhaustive()
    }
}

/// The answer of a batch's task that ended without answering (it panicked).
fn lost_answer() -> StoreError {
    StoreError::Corrupt("the task writing a batch of call results ended without an answer".into())
}

impl FinishBatcher {
    pub(crate) fn new(on_known_head: bool) -> FinishBatcher {
        FinishBatcher {
            queue: SyncMutex::default(),
            next_ticket: AtomicU64::default(),
            leader: Mutex::default(),
            on_known_head,
        }
    }

    /// See [`Store::finish_call`].
    pub(crate) async fn finish(
        &self,
        store: &Store,
        id: &str,
        result: &ExecutionResult,
        audit: &FinishAudit<'_>,
    ) -> Result<AuditEvent> {
        let (reply, mut answer) = oneshot::channel();
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        self.lock_queue().push(Pending {
            ticket,
            id: id.to_string(),
            result: result.clone(),
            kind: audit.kind.to_string(),
            tool: audit.tool.map(str::to_string),
            actor: audit.actor.to_string(),
            payload: audit.payload.clone(),
            reply,
        });
        // A caller that goes away before its request is taken into a batch withdraws it:
        // nothing of it is written. Once taken, its batch writes it whole (on its own task).
        let _withdraw = Withdraw {
            batcher: self,
            ticket,
        };
        loop {
            let leading = self.leader.lock().await;
            match answer.try_recv() {
                Ok(answered) => return answered,
                Err(oneshot::error::TryRecvError::Closed) => return Err(lost_answer()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = {
                let mut queue = self.lock_queue();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect::<Vec<_>>()
            };
            if batch.is_empty() {
                // This result is in a batch whose starter went away; its task answers.
                drop(leading);
                return answer.await.unwrap_or_else(|_| Err(lost_answer()));
            }
            let on_known_head = self.on_known_head;
            if batch.len() == 1 && batch[0].ticket == ticket {
                // Only this caller's result: written in this future, exactly as without
                // batching (dropped half-way, its transaction is rolled back).
                write_batch(store, batch, on_known_head).await;
            } else {
                let writer = store.clone();
                // A panic inside is reported to each waiting caller as a lost answer.
                let _ = tokio::spawn(async move { write_batch(&writer, batch, on_known_head).await }).await;
            }
            drop(leading);
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        // A panic while holding this lock leaves only a consistent Vec behind (push and drain
        // do not panic half-way), so a poisoned lock is safe to use.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes a request from the queue when its caller's future is dropped (a no-op once the
/// request was taken into a batch or answered).
struct Withdraw<'a> {
    batcher: &'a FinishBatcher,
    ticket: u64,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.batcher.lock_queue().retain(|p| p.ticket != self.ticket);
    }
}

/// Writes `batch` in one transaction and answers each caller: in one statement when this store
/// knows the head of its own chain, else (or when the database refused that) locking the head
/// first; when that fails too, each call on its own.
async fn write_batch(store: &Store, batch: Vec<Pending>, on_known_head: bool) {
    if on_known_head && let Some(outcome) = write_on_known_head(store, &batch).await {
        match outcome {
            Ok(events) => {
                for (p, event) in batch.into_iter().zip(events) {
                    let _ = p.reply.send(Ok(event));
                }
                return;
            }
            // As below: the commit's fate is unknown, so nothing is written again.
            Err(StoreError::Unreachable(e)) => return answer_unreachable(batch, &e),
            // Rolled back (the head moved, or a call was no longer running): forget the head
            // and write the batch the locking way, which reads it and answers each call.
            Err(e) => {
                tracing::debug!(error = %e, calls = batch.len(), "a batch on the known head was refused; locking the head");
                store.call_head.forget();
            }
        }
    }
    if batch.len() == 1 {
        return write_each(store, batch).await;
    }
    match write_together(store, &batch).await {
        Ok(outcomes) => {
            for (p, outcome) in batch.into_iter().zip(outcomes) {
                let _ = p.reply.send(outcome);
            }
        }
        // The connection failed: the commit's fate may be unknown, so nothing is written again
        // (a result written twice is refused anyway, but its caller would read a false
        // conflict); each caller hears that the database is unreachable, as it would alone.
        Err(StoreError::Unreachable(e)) => answer_unreachable(batch, &e),
        // Rolled back: each call is written on its own, for its own answer.
        Err(e) => {
            tracing::warn!(error = %e, calls = batch.len(), "a batch of call results failed; writing them one by one");
            write_each(store, batch).await;
        }
    }
}

/// Tells each caller of `batch` that the database could not be reached.
fn answer_unreachable(batch: Vec<Pending>, e: &sqlx::Error) {
    let reason = e.to_string();
    for p in batch {
        let e = sqlx::Error::Io(std::io::Error::other(reason.clone()));
        let _ = p.reply.send(Err(StoreError::Unreachable(e)));
    }
}

/// One statement, its own transaction: every result of `batch` written over its `running`
/// record and one event for each, hashed against the head this store knows of its own chain
/// (`audit_finish_calls`). The database refuses the whole statement when a call is no longer
/// running or an event does not extend the head. `None` when this store writes to chain 1,
/// whose head other writers move, or does not know its chain's head.
async fn write_on_known_head(store: &Store, batch: &[Pending]) -> Option<Result<Vec<AuditEvent>>> {
    let chain = store.call_chain();
    if chain == crate::MAIN_AUDIT_CHAIN {
        return None;
    }
    let (mut seq, mut hash) = store.call_head.of(chain)?;
    let written = async {
        let mut rows = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for p in batch {
            rows.push(result_row(p)?);
            let event = next_link(
                chain,
                seq,
                &hash,
                &p.kind,
                p.tool.as_deref(),
                &p.actor,
                &p.payload.to_string(),
            );
            (seq, hash) = (event.seq, event.hash.clone());
            events.push(event);
        }
        sqlx::query("SELECT audit_finish_calls($1::json, $2::json)")
            .bind(Value::Array(rows).to_string())
            .bind(Value::Array(events.iter().map(event_row).collect()).to_string())
            .execute(&store.pool)
            .await?;
        store
            .appended_elsewhere
            .fetch_add(events.len() as i64, Ordering::AcqRel);
        store.call_head.saw(chain, seq, &hash);
        Ok::<_, StoreError>(events)
    };
    Some(written.await)
}

async fn write_each(store: &Store, batch: Vec<Pending>) {
    for p in batch {
        let audit = FinishAudit {
            kind: &p.kind,
            tool: p.tool.as_deref(),
            actor: &p.actor,
            payload: &p.payload,
        };
        let outcome = store.finish_call_alone(&p.id, &p.result, &audit).await;
        let _ = p.reply.send(outcome);
    }
}

/// One transaction: the head lock, every result still `running` written, one event for each
/// result written (in the batch's order), commit. The outcome of each call, in order.
async fn write_together(store: &Store, batch: &[Pending]) -> Result<Vec<Result<AuditEvent>>> {
    // The same execution twice in one batch (two results for one call): only the first is
    // offered to the database, so the row written and the event agree.
    let mut offered = HashSet::new();
    let mut rows = Vec::with_capacity(batch.len());
    for p in batch {
        if !offered.insert(p.id.as_str()) {
            continue;
        }
        rows.push(result_row(p)?);
    }
    let mut tx = store.begin_on_chain(store.call_chain()).await?;
    let mut written: HashSet<String> = sqlx::query(
        "UPDATE executions AS e SET status = r.status, output = r.output, stderr = r.stderr, \
         error = r.error, exit_code = r.exit_code, duration_ms = r.duration_ms, cpu_ms = r.cpu_ms, \
         peak_memory_bytes = r.peak_memory_bytes, sandbox_id = r.sandbox_id, \
         finished_at = r.finished_at, network_denials = r.network_denials, warm = r.warm \
         FROM json_to_recordset($1::json) AS r(id TEXT, status TEXT, output TEXT, stderr TEXT, \
         error TEXT, exit_code BIGINT, duration_ms BIGINT, cpu_ms BIGINT, peak_memory_bytes BIGINT, \
         sandbox_id TEXT, finished_at BIGINT, network_denials TEXT, warm TEXT) \
         WHERE e.id = r.id AND e.status = 'running' RETURNING e.id",
    )
    .bind(Value::Array(rows).to_string())
    .fetch_all(&mut *tx.tx)
    .await?
    .iter()
    .map(|row| row.try_get::<String, _>("id"))
    .collect::<std::result::Result<_, _>>()?;

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    for p in batch {
        if !written.remove(&p.id) {
            outcomes.push(Err(StoreError::Conflict(format!(
                "execution {} is not running",
                p.id
            ))));
            continue;
        }
        let payload = p.payload.to_string();
        let event = tx.next_event(&p.kind, p.tool.as_deref(), &p.actor, &payload);
        events.push(event_row(&event));
        outcomes.push(Ok(event));
    }
    if !events.is_empty() {
        // One statement per event inside the function, so that the chain's guards run for
        // each link (an AFTER trigger of a many-row INSERT would move the head only at its end).
        sqlx::query("SELECT audit_append($1::json)")
            .bind(Value::Array(events).to_string())
            .execute(&mut *tx.tx)
            .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// A call's result as `json_to_recordset` reads it in `write_together` and
/// `audit_finish_calls`.
fn result_row(p: &Pending) -> Result<Value> {
    let r = &p.result;
    Ok(json!({
        "id": p.id,
        "status": r.status.as_str(),
        "output": r.output.as_ref().map(|o| o.to_string()),
        "stderr": r.stderr,
        "error": r.error,
        "exit_code": r.exit_code,
        "duration_ms": r.duration_ms,
        "cpu_ms": r.cpu_ms,
        "peak_memory_bytes": r.peak_memory_bytes,
        "sandbox_id": r.sandbox_id,
        "finished_at": r.finished_at,
        "network_denials": crate::denials_text(r)?,
        "warm": crate::warm_text(r)?,
    }))
}

/// An event as `audit_append` reads it.
fn event_row(event: &AuditEvent) -> Value {
    json!({
        "chain": event.chain,
        "seq": event.seq,
        "at_ms": event.at_ms,
        "kind": event.kind,
        "tool": event.tool,
        "actor": event.actor,
        "payload": event.payload,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    })
}

/// The event that extends `chain`'s head at `head_seq` with `head_hash`, stamped now.
fn next_link(
    chain: i64,
    head_seq: i64,
    head_hash: &str,
    kind: &str,
    tool: Option<&str>,
    actor: &str,
    payload: &str,
) -> AuditEvent {
    let seq = head_seq + 1;
    let at_ms = slovo_core::time::now_ms();
    AuditEvent {
        chain,
        seq,
        at_ms,
        kind: kind.to_string(),
        tool: tool.map(str::to_string),
        actor: actor.to_string(),
        payload: payload.to_string(),
        prev_hash: head_hash.to_string(),
        hash: event_hash(seq, at_ms, kind, tool, actor, payload, head_hash),
    }
}

impl Tx {
    /// The event that extends this transaction's head, counted as appended (the caller writes
    /// it before committing).
    fn next_event(&mut self, kind: &str, tool: Option<&str>, actor: &str, payload: &str) -> AuditEvent {
        let event = next_link(
            self.chain,
            self.head_seq,
            &self.head_hash,
            kind,
            tool,
            actor,
            payload,
        );
        self.head_seq = event.seq;
        self.head_hash = event.hash.clone();
        self.appended.push(event.clone());
        event
    }
}
