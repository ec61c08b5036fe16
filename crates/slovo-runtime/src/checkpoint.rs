//! Signed checkpoints of the audit chain, written outside the database (`docs/audit.md`).
//!
//! The chain in the database proves nothing to someone who can rewrite the database: they can
//! delete the newest events and move the head back, or edit an event and recompute every hash
//! after it. So the runtime signs the head every so often with an Ed25519 key kept in the data
//! directory (`audit-checkpoint.key`, mode 0600, created with the log) and appends the signed
//! checkpoint to `audit-checkpoints.jsonl` there. The database in turn records the newest
//! checkpoint it has seen (`audit_checkpoints`), so a log restored from an older copy is caught
//! too: each side guards the other.
//!
//! When: after every [`CHECKPOINT_EVERY_EVENTS`] events this runtime appends (started from the
//! call path, written on a task of its own); every [`CHECKPOINT_INTERVAL`] when this runtime
//! appended anything since its last checkpoint, in front ends that run for long
//! ([`Runtime::spawn_audit_checkpoint_timer`]); and when a front end finishes (the end of a CLI
//! command, server shutdown, the end of an MCP session) through
//! [`Runtime::flush_audit_checkpoints`]. Nothing is signed or
//! written on the call path itself: it only compares two integers.
//!
//! Before signing, the checkpointer checks that the chain in the database still holds the
//! previous checkpoint's event with its hash and links from it to the head, so it never
//! signs a chain that was truncated or rewritten since.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use slovo_core::audit::checkpoint::{
    Checkpoint, CheckpointSigner, complete_lines, line_hash, verify_checkpoint, verify_log,
};
use slovo_core::audit::{AuditEvent, ChainError, ChainVerifier, GENESIS_HASH};
use slovo_store::{CheckpointRecord, ExecutionText, Store};

use crate::audit_chains::OtherChains;
use crate::secrets::key_file;
use crate::{AuditReport, Result, Runtime, RuntimeError};

/// The checkpoint signing key in the data directory (32-byte Ed25519 seed, mode 0600).
pub const CHECKPOINT_KEY_FILE: &str = "audit-checkpoint.key";
/// The checkpoint log in the data directory: one signed checkpoint per line.
pub const CHECKPOINT_LOG_FILE: &str = "audit-checkpoints.jsonl";
/// A checkpoint is started once this many events were appended since the last one. Also the
/// most events a trail may hold with no checkpoint log at all before verification calls the
/// log missing.
pub const CHECKPOINT_EVERY_EVENTS: i64 = 256;
/// How often a runtime that appended events checkpoints them even when fewer than
/// [`CHECKPOINT_EVERY_EVENTS`] came.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// How many events the checkpointer reads at a time while checking the new stretch of chain.
const PAGE: i64 = 1000;

/// The checkpointer of one runtime.
pub(crate) struct Checkpoints {
    store: Store,
    data_dir: PathBuf,
    /// The newest event of chain 1 this runtime checkpointed, or found checkpointed already.
    done: AtomicI64,
    /// How many of the events this runtime appended to other chains were anchored on chain 1
    /// by a checkpoint (see `audit_chains`).
    done_elsewhere: AtomicI64,
    /// A background checkpoint is under way (only one at a time is started).
    busy: AtomicBool,
    /// Serialises this process's writers; the log's file lock serialises processes.
    write: tokio::sync::Mutex<()>,
}

impl Checkpoints {
    pub(crate) fn new(store: Store, data_dir: PathBuf) -> Arc<Checkpoints> {
        Arc::new(Checkpoints {
            store,
            data_dir,
            done: AtomicI64::new(0),
            done_elsewhere: AtomicI64::new(0),
            busy: AtomicBool::new(false),
            write: tokio::sync::Mutex::new(()),
        })
    }

    /// Every [`CHECKPOINT_INTERVAL`], checkpoints what this runtime appended since its last
    /// checkpoint. Ends when the runtime that owns the checkpointer is dropped.
    fn spawn_timer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(cp) = weak.upgrade() else { break };
                if cp.pending() {
                    cp.write_logged().await;
                }
            }
        })
    }

    /// This runtime appended events that no checkpoint covers yet.
    fn pending(&self) -> bool {
        self.store.appended_seq() > self.done.load(Ordering::Acquire)
            || self.store.appended_elsewhere() > self.done_elsewhere.load(Ordering::Acquire)
    }

    /// Called by the call path with each event it appended: starts a checkpoint on a task of
    /// its own once enough events have accumulated (on chain 1, or on this instance's own
    /// chain). Costs two atomic loads otherwise.
    pub(crate) fn after_append(self: &Arc<Self>, event: &AuditEvent) {
        let accumulated = if event.chain == slovo_store::MAIN_AUDIT_CHAIN {
            event.seq - self.done.load(Ordering::Acquire)
        } else {
            self.store.appended_elsewhere() - self.done_elsewhere.load(Ordering::Acquire)
        };
        if accumulated < CHECKPOINT_EVERY_EVENTS {
            return;
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.busy.store(false, Ordering::Release);
            return;
        };
        let cp = self.clone();
        handle.spawn(async move {
            cp.write_logged().await;
            cp.busy.store(false, Ordering::Release);
        });
    }

    async fn write_logged(&self) {
        if let Err(e) = self.write().await {
            tracing::error!(error = %e, "failed to write an audit checkpoint");
        }
    }

    /// Checkpoints the database's current head unless the log already ends with it. Returns
    /// the checkpoint written, if any.
    pub(crate) async fn write(&self) -> Result<Option<Checkpoint>> {
        let _serial = self.write.lock().await;
        let dir = self.data_dir.clone();
        let log = tokio::task::spawn_blocking(move || OpenLog::open(&dir))
            .await
            .map_err(|e| RuntimeError::io("lock", CHECKPOINT_LOG_FILE, std::io::Error::other(e)))??;
        // The other chains' heads go onto chain 1 first, so that signing chain 1 covers them.
        let elsewhere = self.store.appended_elsewhere();
        crate::audit_chains::anchor_chains(&self.store).await?;
        let (head_seq, head_hash) = self.store.audit_head().await?;
        let (from_seq, from_hash, n) = match &log.last {
            Some(c) => (c.seq, c.hash.clone(), c.n),
            None => (0, GENESIS_HASH.to_string(), 0),
        };
        if head_seq < from_seq {
            return Err(ChainError::BehindCheckpoint {
                head_seq,
                checkpoint: n,
                checkpoint_seq: from_seq,
            }
            .into());
        }
        if head_seq == from_seq {
            if head_hash != from_hash {
                return Err(ChainError::CheckpointMismatch {
                    seq: from_seq,
                    checkpoint: n,
                    last_good: 0,
                }
                .into());
            }
            self.done.fetch_max(head_seq, Ordering::AcqRel);
            self.done_elsewhere.fetch_max(elsewhere, Ordering::AcqRel);
            return Ok(None);
        }
        self.check_stretch(from_seq, &from_hash, n, head_seq, &head_hash)
            .await?;
        let signer = log.signer()?;
        let checkpoint = signer.sign(
            n + 1,
            head_seq,
            &head_hash,
            slovo_core::time::now_ms(),
            &log.last_line_hash,
        );
        let line = checkpoint.line();
        let log = tokio::task::spawn_blocking(move || log.append(&line).map(|()| line))
            .await
            .map_err(|e| RuntimeError::io("write", CHECKPOINT_LOG_FILE, std::io::Error::other(e)))??;
        // After the line is durable: a crash in between leaves the database one behind the
        // log, which verification accepts; the other order would look like a rollback.
        self.store
            .record_checkpoint(&CheckpointRecord {
                key: checkpoint.key.clone(),
                n: checkpoint.n,
                seq: checkpoint.seq,
                line_hash: line_hash(&log),
                at_ms: checkpoint.at_ms,
            })
            .await?;
        self.done.fetch_max(head_seq, Ordering::AcqRel);
        self.done_elsewhere.fetch_max(elsewhere, Ordering::AcqRel);
        tracing::info!(n = checkpoint.n, seq = checkpoint.seq, "audit checkpoint written");
        Ok(Some(checkpoint))
    }

    /// Checks that the database still holds event `from_seq` with `from_hash` and that the
    /// chain links from it to the head.
    async fn check_stretch(
        &self,
        from_seq: i64,
        from_hash: &str,
        n: i64,
        head_seq: i64,
        head_hash: &str,
    ) -> Result<()> {
        if from_seq > 0 {
            let at = self.store.audit_page(from_seq - 1, 1).await?;
            match at.first() {
                Some(e) if e.seq == from_seq && e.hash == from_hash => {}
                Some(e) if e.seq == from_seq => {
                    return Err(ChainError::CheckpointMismatch {
                        seq: from_seq,
                        checkpoint: n,
                        last_good: 0,
                    }
                    .into());
                }
                _ => {
                    return Err(ChainError::Truncated {
                        last_seq: from_seq - 1,
                        head_seq,
                    }
                    .into());
                }
            }
        }
        let mut verifier = ChainVerifier::resume(from_seq, from_hash);
        let mut after = from_seq;
        while after < head_seq {
            let page = self.store.audit_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in page.iter().take_while(|e| e.seq <= head_seq) {
                verifier.push(e)?;
            }
        }
        verifier.finish(head_seq, head_hash)?;
        Ok(())
    }
}

/// The checkpoint log, opened for appending and locked against other processes (the lock is
/// released when the file is closed).
struct OpenLog {
    dir: PathBuf,
    file: File,
    /// The newest checkpoint in the log.
    last: Option<Checkpoint>,
    /// The hash of its line ([`GENESIS_HASH`] for an empty log).
    last_line_hash: String,
}

impl OpenLog {
    fn open(dir: &Path) -> Result<OpenLog> {
        std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io("create", dir, e))?;
        let path = dir.join(CHECKPOINT_LOG_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| RuntimeError::io("open", &path, e))?;
        file.lock().map_err(|e| RuntimeError::io("lock", &path, e))?;
        // Only the end is read: the newest checkpoint is all a new one depends on, and the log
        // grows for ever. A line is a few hundred bytes.
        let len = file
            .metadata()
            .map_err(|e| RuntimeError::io("stat", &path, e))?
            .len();
        let start = len.saturating_sub(8192);
        file.seek(SeekFrom::Start(start))
            .map_err(|e| RuntimeError::io("read", &path, e))?;
        let mut tail = String::new();
        file.read_to_string(&mut tail)
            .map_err(|e| RuntimeError::io("read", &path, e))?;
        let (complete, cut_short) = complete_lines(&tail);
        if !cut_short.is_empty() {
            // A write cut short by a crash: never acknowledged, never recorded by the
            // database. Drop it so the next line starts on a line of its own.
            file.set_len(len - cut_short.len() as u64)
                .map_err(|e| RuntimeError::io("truncate", &path, e))?;
        }
        let last_line = complete.lines().next_back();
        let mut log = OpenLog {
            dir: dir.to_path_buf(),
            file,
            last: None,
            last_line_hash: GENESIS_HASH.to_string(),
        };
        if let Some(line) = last_line {
            // Check the newest line's signature before building on it: a forged or foreign
            // line must not become the anchor of the next checkpoint.
            let c: Checkpoint = serde_json::from_str(line).map_err(|e| ChainError::CheckpointLogBroken {
                line: 0,
                reason: format!("the newest line is not a checkpoint record: {e}"),
            })?;
            log.last_line_hash = line_hash(line);
            log.last = Some(c);
            let public = log.signer()?.public_hex();
            if let Some(c) = &log.last {
                verify_checkpoint(c, &public)?;
            }
        }
        Ok(log)
    }

    /// The signing key. Created only together with a new log: a log whose key is gone cannot
    /// be continued under another key (every older checkpoint would stop verifying).
    fn signer(&self) -> Result<CheckpointSigner> {
        let path = self.dir.join(CHECKPOINT_KEY_FILE);
        match key_file(&path, self.last.is_none())? {
            Some(seed) => Ok(CheckpointSigner::from_seed(&seed)),
            None => Err(ChainError::CheckpointKey {
                reason: format!(
                    "{} is missing but the checkpoint log exists; restore the key",
                    path.display()
                ),
            }
            .into()),
        }
    }

    fn append(mut self, line: &str) -> Result<()> {
        let path = self.dir.join(CHECKPOINT_LOG_FILE);
        // One write of a whole line onto an append-only descriptor, then to disk.
        self.file
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| RuntimeError::io("write", &path, e))?;
        self.file
            .sync_data()
            .map_err(|e| RuntimeError::io("sync", &path, e))
    }
}

impl Runtime {
    /// Checkpoints the audit chain's current head now, unless the log already ends with it:
    /// checks that the chain still extends the log's newest checkpoint, signs, appends to the
    /// log and records it in the database. Returns the checkpoint written, if any.
    pub async fn checkpoint_audit(&self) -> Result<Option<Checkpoint>> {
        self.checkpoints.write().await
    }

    /// Starts the timer that checkpoints this runtime's events every [`CHECKPOINT_INTERVAL`]
    /// (when it appended any), for front ends that run for long (the server, an MCP session);
    /// a single CLI command relies on [`Runtime::flush_audit_checkpoints`] instead. The task
    /// ends by itself when the runtime is dropped, or when aborted. Must be called inside a
    /// Tokio runtime.
    pub fn spawn_audit_checkpoint_timer(&self) -> tokio::task::JoinHandle<()> {
        self.checkpoints.spawn_timer()
    }

    /// What a front end calls when it finishes (the end of a CLI command, server shutdown):
    /// checkpoints the head if this runtime appended events since its last checkpoint.
    pub async fn flush_audit_checkpoints(&self) -> Result<Option<Checkpoint>> {
        if !self.checkpoints.pending() {
            return Ok(None);
        }
        self.checkpoints.write().await
    }

    /// Walks the whole audit chain, page by page, and compares it with the signed checkpoints
    /// outside the database. Fails naming the first thing that does not fit: an event edited,
    /// deleted, inserted or reordered; an event whose hash differs from a checkpoint (the trail
    /// was rewritten and re-hashed); a trail that ends before the newest checkpoint
    /// (truncated); an execution record gone or changed; a checkpoint log that is missing,
    /// rolled back, replaced, broken or badly signed.
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        const PAGE: i64 = 1000;
        // Read in the order things are written, newest-written first: the database's record of
        // the newest checkpoint, then the log, then the head. A checkpoint written meanwhile
        // then only ever makes what is read later newer, never what is read earlier.
        let records = self.store.checkpoint_records().await?;
        let key_path = self.data_dir.join(CHECKPOINT_KEY_FILE);
        let public = key_file(&key_path, false)?.map(|seed| CheckpointSigner::from_seed(&seed).public_hex());
        let log_path = self.data_dir.join(CHECKPOINT_LOG_FILE);
        let text = match std::fs::read_to_string(&log_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(RuntimeError::io("read", &log_path, e)),
        };
        let mut other_chains = OtherChains::read(&self.store).await?;
        let (head_seq, head_hash) = self.store.audit_head().await?;

        let checkpoints = if complete_lines(&text).0.is_empty() {
            Vec::new()
        } else {
            let Some(public) = &public else {
                return Err(ChainError::CheckpointKey {
                    reason: format!(
                        "{} is missing, so the checkpoints in {} cannot be verified",
                        key_path.display(),
                        log_path.display()
                    ),
                }
                .into());
            };
            verify_log(&text, public)?
        };

        let mut verifier = ChainVerifier::default();
        let mut next_checkpoint = 0;
        let mut last_good = 0;
        let mut after = 0;
        loop {
            let page = self.store.audit_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() as i64 == PAGE;
            // Events appended after the head was read are beyond it and not checked.
            let page: Vec<_> = page.into_iter().take_while(|e| e.seq <= head_seq).collect();
            let records = self.execution_texts(&page).await?;
            for e in &page {
                verifier.push(e)?;
                other_chains.observe(e)?;
                while let Some(c) = checkpoints.get(next_checkpoint).map(|c| &c.checkpoint)
                    && c.seq == e.seq
                {
                    if c.hash != e.hash {
                        return Err(ChainError::CheckpointMismatch {
                            seq: e.seq,
                            checkpoint: c.n,
                            last_good,
                        }
                        .into());
                    }
                    last_good = e.seq;
                    next_checkpoint += 1;
                }
                check_execution_record(e, &records)?;
            }
            if after >= head_seq || !full {
                break;
            }
        }
        let events = verifier.finish(head_seq, &head_hash)?;

        let newest = checkpoints.last();
        if let Some(c) = newest.map(|c| &c.checkpoint)
            && c.seq > head_seq
        {
            return Err(ChainError::BehindCheckpoint {
                head_seq,
                checkpoint: c.n,
                checkpoint_seq: c.seq,
            }
            .into());
        }
        let checkpoint_seq = newest.map_or(0, |c| c.checkpoint.seq);
        let others = other_chains.verify(self, head_seq, checkpoint_seq).await?;
        let recorded = public.as_ref().and_then(|p| records.iter().find(|r| &r.key == p));
        match newest {
            None => {
                // No checkpoint at all. Fine for a young trail (the first checkpoint comes
                // after at most CHECKPOINT_EVERY_EVENTS events, or at the end of the command),
                // not when the database says this log had checkpoints, nor for a long trail.
                let had_some = recorded.is_some() || (public.is_none() && !records.is_empty());
                // Counted on every chain: the other chains' events start checkpoints too.
                let held = head_seq + others.events;
                if had_some || held > CHECKPOINT_EVERY_EVENTS {
                    return Err(ChainError::CheckpointLogMissing {
                        head_seq: held,
                        recorded: recorded.map(|r| r.n),
                    }
                    .into());
                }
            }
            Some(newest) => {
                if let Some(r) = recorded {
                    if r.n > newest.checkpoint.n {
                        return Err(ChainError::CheckpointLogRolledBack {
                            log_n: newest.checkpoint.n,
                            log_seq: newest.checkpoint.seq,
                            recorded_n: r.n,
                            recorded_seq: r.seq,
                        }
                        .into());
                    }
                    let same = usize::try_from(r.n - 1)
                        .ok()
                        .and_then(|i| checkpoints.get(i))
                        .is_some_and(|c| c.line_hash == r.line_hash);
                    if !same {
                        return Err(ChainError::CheckpointLogReplaced { n: r.n }.into());
                    }
                }
            }
        }
        Ok(AuditReport {
            events: events + others.events,
            chains: 1 + others.chains,
            head_hash,
            checkpoints: checkpoints.len() as i64,
            checkpoint_seq,
            // On every chain: chain 1's events after the checkpoint, and each other chain's
            // after the anchor that checkpoint covers.
            unchecked_events: head_seq - checkpoint_seq + others.unchecked,
        })
    }

    /// The stored execution records the execution events of `page` point to, by id.
    pub(crate) async fn execution_texts(
        &self,
        page: &[AuditEvent],
    ) -> Result<HashMap<String, ExecutionText>> {
        let ids: Vec<String> = page
            .iter()
            .filter_map(|e| execution_event(e).map(|(id, _)| id))
            .collect();
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            for t in self.store.execution_texts(chunk).await? {
                out.insert(t.id.clone(), t);
            }
        }
        Ok(out)
    }
}

/// The execution id and payload of an execution event (its payload is authentic once the
/// event's hash verified).
fn execution_event(e: &AuditEvent) -> Option<(String, Value)> {
    if e.kind != slovo_core::audit::kinds::EXECUTION_FINISHED {
        return None;
    }
    let payload: Value = serde_json::from_str(&e.payload).ok()?;
    let id = payload.get("execution_id")?.as_str()?.to_string();
    Some((id, payload))
}

/// Execution events carry the call's status and SHA-256 digests of its arguments and output;
/// the record they describe must still exist and match them.
pub(crate) fn check_execution_record(e: &AuditEvent, records: &HashMap<String, ExecutionText>) -> Result<()> {
    let Some((id, payload)) = execution_event(e) else {
        return Ok(());
    };
    let fail = |problem: String| -> RuntimeError {
        ChainError::ExecutionRecord {
            seq: e.seq,
            execution_id: id.clone(),
            problem,
        }
        .into()
    };
    let Some(record) = records.get(&id) else {
        return Err(fail("has no execution record (deleted)".into()));
    };
    if let Some(status) = payload.get("status").and_then(Value::as_str)
        && status != record.status
    {
        return Err(fail(format!(
            "is recorded as {} but the event says {status} (record edited)",
            record.status
        )));
    }
    let digest = |text: &str| hex::encode(Sha256::digest(text.as_bytes()));
    if let Some(expected) = payload.get("arguments_sha256").and_then(Value::as_str)
        && digest(&record.arguments) != expected
    {
        return Err(fail(
            "has arguments that differ from the event's digest (record edited)".into(),
        ));
    }
    if let Some(expected) = payload.get("output_sha256") {
        let actual = record.output.as_deref().map(digest);
        if expected.as_str() != actual.as_deref() {
            return Err(fail(
                "has output that differs from the event's digest (record edited)".into(),
            ));
        }
    }
    Ok(())
}
