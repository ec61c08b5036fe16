//! The audit chains besides chain 1 (`docs/audit.md`, "Several writers"): anchoring their
//! heads on chain 1 before a checkpoint is signed, and walking them in `audit verify`.
//!
//! On PostgreSQL each instance writes its calls' results to a chain of its own, opened by an
//! `audit.chain_opened` event on chain 1 that the chain's first event links to. The
//! checkpointer signs only chain 1's head; before it does, it appends to chain 1 an
//! `audit.chains_anchored` event with every other chain's head, after checking that each chain
//! still links from the previous anchor. The signature then covers every chain through chain
//! 1's hashes, and verification checks that every anchor still names an event that exists with
//! that hash: a chain cut short or rewritten up to its newest anchor under a checkpoint is
//! caught as on chain 1.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};
use slovo_core::audit::record::{AnchoredHead, AuditChainOpened, AuditChainsAnchored};
use slovo_core::audit::{AuditEvent, AuditRecord, ChainError, ChainVerifier, event_hash, kinds};
use slovo_store::{AuditChainHead, MAIN_AUDIT_CHAIN, Store};

use crate::audit_record::AppendRecord;
use crate::checkpoint::check_execution_record;
use crate::{Result, Runtime, RuntimeError};

/// How many events are read at a time while walking a chain.
const PAGE: i64 = 1000;

/// Who appends the anchors and openings.
const SYSTEM_ACTOR: &str = "system";

/// A chain's opening event on chain 1.
#[derive(Debug, Clone)]
struct Opening {
    seq: i64,
    hash: String,
}

fn in_chain(chain: i64, error: ChainError) -> RuntimeError {
    ChainError::InChain {
        chain,
        error: Box::new(error),
    }
    .into()
}

/// The payload of an `audit.chains_anchored` or `audit.chain_opened` event.
fn parse<T: serde::de::DeserializeOwned>(e: &AuditEvent) -> Result<T> {
    serde_json::from_str(&e.payload).map_err(|err| {
        ChainError::BadPayload {
            seq: e.seq,
            kind: e.kind.clone(),
            reason: err.to_string(),
        }
        .into()
    })
}

/// How many times an anchor is checked and appended, the last time under chain 1's lock (the
/// earlier ones without it, each refused because chain 1 moved in between).
const ANCHOR_ATTEMPTS: usize = 3;

/// Appends an `audit.chains_anchored` event to chain 1 listing every other chain's head,
/// after checking that each chain links from the previous anchor (or from its opening).
/// Nothing is appended when there are no other chains, or none moved since the last anchor.
///
/// The check reads and hashes every event appended since the previous anchor, on every chain,
/// without chain 1's head lock: held through the check, that lock (which every instance's
/// anchors and every lifecycle change need) kept the others waiting behind a slow checkpointer.
/// The anchor is then appended in a statement of its own, linked to chain 1's head as it was
/// before the newest anchor was read, so the database takes it only if nothing came in between
/// (and the lock is held only while that statement runs). If something did, the check is made
/// again; the last time under the lock, where nothing can.
pub(crate) async fn anchor_chains(store: &Store) -> Result<()> {
    anchor_chains_checked_then(store, || async {}).await
}

/// [`anchor_chains`], running `between` after each check and before its append: where another
/// checkpointer's anchor can come in (the tests make one come in there).
async fn anchor_chains_checked_then<F, Fut>(store: &Store, mut between: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 1..ANCHOR_ATTEMPTS {
        let Some(plan) = plan_anchor(store).await? else {
            return Ok(());
        };
        between().await;
        // Linked to chain 1's head as read before the newest anchor was: the database takes it
        // only if nothing was appended to chain 1 since, so no anchor came in between.
        let event = plan.linked_to_main_head();
        if store.append_event_at_head(&event).await? {
            return Ok(());
        }
    }
    // Chain 1 kept moving between the check and the append: check under its lock.
    let mut tx = store.begin().await?;
    match plan_anchor(store).await? {
        Some(plan) => {
            tx.append_record(None, SYSTEM_ACTOR, &plan.record).await?;
            tx.commit().await?;
            Ok(())
        }
        None => Ok(tx.rollback().await?),
    }
}

/// An anchor checked and ready to append.
struct AnchorPlan {
    /// Chain 1's head (sequence number and hash) when the check began.
    main_head: (i64, String),
    record: AuditRecord,
}

impl AnchorPlan {
    /// The anchor as the event that extends chain 1's head as the check found it.
    fn linked_to_main_head(&self) -> AuditEvent {
        let (head_seq, head_hash) = &self.main_head;
        let seq = head_seq + 1;
        let at_ms = slovo_core::time::now_ms();
        let payload = self.record.payload().to_string();
        let kind = self.record.kind();
        AuditEvent {
            chain: MAIN_AUDIT_CHAIN,
            seq,
            at_ms,
            kind: kind.to_string(),
            tool: None,
            actor: SYSTEM_ACTOR.to_string(),
            hash: event_hash(seq, at_ms, kind, None, SYSTEM_ACTOR, &payload, head_hash),
            payload,
            prev_hash: head_hash.clone(),
        }
    }
}

/// Reads chain 1's head, the newest anchor, then every other chain's head, and checks that each chain links
/// from the anchor (or its opening) to its head. The anchor to append, or `None` when there
/// are no other chains or none moved. The heads are read after the anchor, so they are never
/// older than those it recorded.
async fn plan_anchor(store: &Store) -> Result<Option<AnchorPlan>> {
    let main_head = store.audit_head().await?;
    let previous = PreviousAnchor::read(store).await?;
    let heads = other_heads(store).await?;
    if heads.is_empty() {
        return Ok(None);
    }
    let gone = previous
        .heads
        .keys()
        .find(|c| !heads.iter().any(|h| h.chain == **c));
    let new_chains = heads.iter().any(|h| !previous.heads.contains_key(&h.chain));
    let openings = if new_chains || gone.is_some() {
        openings(store).await?
    } else {
        HashMap::new()
    };
    if let Some(&chain) = gone {
        return Err(match openings.get(&chain) {
            Some(opening) => ChainError::ChainMissing {
                chain,
                opened_seq: opening.seq,
            },
            None => ChainError::ChainNotOpened { chain },
        }
        .into());
    }
    let mut moved = false;
    for head in &heads {
        let (from_seq, from_hash) = match previous.heads.get(&head.chain) {
            Some(a) => (a.seq, a.hash.as_str()),
            None => match openings.get(&head.chain) {
                Some(o) => (0, o.hash.as_str()),
                None => return Err(ChainError::ChainNotOpened { chain: head.chain }.into()),
            },
        };
        if (from_seq, from_hash) == (head.seq, head.hash.as_str()) {
            continue;
        }
        moved = true;
        check_stretch(store, head, from_seq, from_hash, previous.seq).await?;
    }
    if !moved && !new_chains {
        return Ok(None);
    }
    Ok(Some(AnchorPlan {
        main_head,
        record: AuditRecord::AuditChainsAnchored(AuditChainsAnchored {
            chains: heads
                .iter()
                .map(|h| AnchoredHead {
                    chain: h.chain,
                    seq: h.seq,
                    hash: h.hash.clone(),
                })
                .collect(),
        }),
    }))
}

/// The head rows of every chain but chain 1.
async fn other_heads(store: &Store) -> Result<Vec<AuditChainHead>> {
    let mut heads = store.audit_chain_heads().await?;
    heads.retain(|h| h.chain != MAIN_AUDIT_CHAIN);
    Ok(heads)
}

/// The newest `audit.chains_anchored` event on chain 1.
#[derive(Debug, Default)]
struct PreviousAnchor {
    /// Its sequence number on chain 1 (0: there is none yet).
    seq: i64,
    /// The heads it recorded, by chain.
    heads: BTreeMap<i64, AnchoredHead>,
}

impl PreviousAnchor {
    async fn read(store: &Store) -> Result<PreviousAnchor> {
        let Some(e) = store.latest_audit_anchor().await? else {
            return Ok(PreviousAnchor::default());
        };
        let anchored: AuditChainsAnchored = parse(&e)?;
        Ok(PreviousAnchor {
            seq: e.seq,
            heads: anchored.chains.into_iter().map(|h| (h.chain, h)).collect(),
        })
    }
}

/// The opening event of each chain, by chain.
async fn openings(store: &Store) -> Result<HashMap<i64, Opening>> {
    let mut out = HashMap::new();
    for e in store.audit_chain_openings().await? {
        let opened: AuditChainOpened = parse(&e)?;
        out.insert(
            opened.chain,
            Opening {
                seq: e.seq,
                hash: e.hash,
            },
        );
    }
    Ok(out)
}

/// Checks that `head.chain` still holds event `from_seq` with `from_hash` (as the anchor at
/// `anchor_seq` on chain 1 recorded it) and links from it to its head.
async fn check_stretch(
    store: &Store,
    head: &AuditChainHead,
    from_seq: i64,
    from_hash: &str,
    anchor_seq: i64,
) -> Result<()> {
    let chain = head.chain;
    if from_seq > 0 {
        match store.audit_chain_event(chain, from_seq).await? {
            Some(e) if e.hash == from_hash => {}
            found => {
                return Err(ChainError::AnchorMismatch {
                    chain,
                    seq: from_seq,
                    anchor_seq,
                    problem: match found {
                        Some(_) => "but it has another hash (rewritten)".into(),
                        None => format!("but the chain ends at event {} (events deleted)", head.seq),
                    },
                }
                .into());
            }
        }
    }
    let mut verifier = ChainVerifier::resume(from_seq, from_hash);
    let mut after = from_seq;
    while after < head.seq {
        let page = store.audit_chain_page(chain, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page.iter().take_while(|e| e.seq <= head.seq) {
            verifier.push(e).map_err(|err| in_chain(chain, err))?;
        }
    }
    verifier
        .finish(head.seq, &head.hash)
        .map_err(|err| in_chain(chain, err))?;
    Ok(())
}

/// What `audit verify` gathers from chain 1 while walking it: the chains opened, the chains
/// anchored and a digest of the anchors, then checks against the other chains. Its size grows
/// with the number of chains, never with the number of events or anchors: the anchors are
/// read back page by page after the walk (`check_anchors`).
#[derive(Debug, Default)]
pub(crate) struct OtherChains {
    /// The chains that held events, and the head rows, read before chain 1's head.
    with_events: Vec<i64>,
    heads: Vec<AuditChainHead>,
    /// Each opened chain's opening event.
    opened: BTreeMap<i64, Opening>,
    /// The chains any anchor names.
    anchored: BTreeSet<i64>,
    /// The anchors the walk of chain 1 verified, to recognise them when they are read back.
    anchors_walked: AnchorDigest,
}

/// What the walk of the other chains found.
#[derive(Debug, Default)]
pub(crate) struct OtherChainsReport {
    /// Chains walked (not counting chain 1).
    pub chains: i64,
    /// Their events.
    pub events: i64,
    /// Their events after the newest anchor that the newest checkpoint covers.
    pub unchecked: i64,
}

/// How many anchors are read back at a time.
const ANCHOR_PAGE: i64 = 200;

/// A running digest of anchor events (sequence number and hash, in chain order), so that the
/// anchors read back after the walk are known to be the ones it verified without keeping them.
#[derive(Debug, Default, PartialEq, Eq)]
struct AnchorDigest {
    count: i64,
    digest: [u8; 32],
}

impl AnchorDigest {
    fn add(&mut self, e: &AuditEvent) {
        let mut next = Sha256::new();
        next.update(self.digest);
        next.update(e.seq.to_be_bytes());
        next.update(e.hash.as_bytes());
        self.digest = next.finalize().into();
        self.count += 1;
    }
}

impl OtherChains {
    /// Reads which chains exist; before chain 1's head is read, so that every chain found
    /// here was opened by an event the walk of chain 1 will see.
    pub(crate) async fn read(store: &Store) -> Result<OtherChains> {
        let with_events = store.audit_chains_with_events().await?;
        let heads = store.audit_chain_heads().await?;
        Ok(OtherChains {
            with_events: with_events
                .into_iter()
                .filter(|c| *c != MAIN_AUDIT_CHAIN)
                .collect(),
            heads: heads
                .into_iter()
                .filter(|h| h.chain != MAIN_AUDIT_CHAIN)
                .collect(),
            ..OtherChains::default()
        })
    }

    /// Notes an event of chain 1 (already verified) that opens a chain or anchors the chains.
    pub(crate) fn observe(&mut self, e: &AuditEvent) -> Result<()> {
        if e.kind == kinds::AUDIT_CHAIN_OPENED {
            let opened: AuditChainOpened = parse(e)?;
            self.opened.insert(
                opened.chain,
                Opening {
                    seq: e.seq,
                    hash: e.hash.clone(),
                },
            );
        } else if e.kind == kinds::AUDIT_CHAINS_ANCHORED {
            for h in parse::<AuditChainsAnchored>(e)?.chains {
                self.anchored.insert(h.chain);
            }
            self.anchors_walked.add(e);
        }
        Ok(())
    }

    /// Walks every other chain from its opening to its head and checks the anchors and the
    /// openings: every chain was opened on chain 1, every chain opened exists, every anchor
    /// (on chain 1 up to `main_head_seq`, the head its walk verified) names an event that is
    /// there with the hash it records; and each execution event's record matches it, as on
    /// chain 1. Counts the events after the newest anchor at or before `checkpoint_seq`.
    pub(crate) async fn verify(
        self,
        rt: &Runtime,
        main_head_seq: i64,
        checkpoint_seq: i64,
    ) -> Result<OtherChainsReport> {
        // Every chain opened on chain 1, anchored there, or holding events, has a head.
        let named: BTreeSet<i64> = self
            .opened
            .keys()
            .chain(&self.anchored)
            .chain(&self.with_events)
            .copied()
            .collect();
        if let Some(chain) = named
            .into_iter()
            .find(|c| !self.heads.iter().any(|h| h.chain == *c))
        {
            return Err(match self.opened.get(&chain) {
                Some(opening) => ChainError::ChainMissing {
                    chain,
                    opened_seq: opening.seq,
                },
                None => ChainError::ChainNotOpened { chain },
            }
            .into());
        }
        // Every chain with a head was opened on chain 1, and links from its opening.
        let mut report = OtherChainsReport::default();
        for head in &self.heads {
            let Some(opening) = self.opened.get(&head.chain) else {
                return Err(ChainError::ChainNotOpened { chain: head.chain }.into());
            };
            report.events += walk(rt, head, opening).await?;
            report.chains += 1;
        }
        let covered = self
            .check_anchors(rt.store(), main_head_seq, checkpoint_seq)
            .await?;
        report.unchecked = self
            .heads
            .iter()
            .map(|h| (h.seq - covered.get(&h.chain).copied().unwrap_or(0)).max(0))
            .sum();
        Ok(report)
    }

    /// Reads chain 1's anchors back page by page (through the index by kind) and checks that
    /// each names an event that is there with the hash it records, and that they are the
    /// anchors the walk verified. Returns, by chain, the event the newest anchor at or before
    /// `checkpoint_seq` records.
    async fn check_anchors(
        &self,
        store: &Store,
        main_head_seq: i64,
        checkpoint_seq: i64,
    ) -> Result<BTreeMap<i64, i64>> {
        let changed = || RuntimeError::from(ChainError::AnchorsChanged { up_to: main_head_seq });
        let mut read_back = AnchorDigest::default();
        let mut covered = BTreeMap::new();
        // By chain, the furthest anchored event that is gone, and the newest anchor naming it:
        // reported once every anchor was read, as the truncation the newest anchor shows.
        let mut gone: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut after = 0;
        loop {
            let page = store.audit_anchors(after, main_head_seq, ANCHOR_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let mut named = Vec::new();
            for e in &page {
                let content = event_hash(
                    e.seq,
                    e.at_ms,
                    &e.kind,
                    e.tool.as_deref(),
                    &e.actor,
                    &e.payload,
                    &e.prev_hash,
                );
                if content != e.hash {
                    return Err(changed());
                }
                read_back.add(e);
                for h in parse::<AuditChainsAnchored>(e)?.chains {
                    if e.seq <= checkpoint_seq {
                        covered.insert(h.chain, h.seq);
                    }
                    named.push((h, e.seq));
                }
            }
            self.check_named(store, &named, &mut gone).await?;
            if (page.len() as i64) < ANCHOR_PAGE {
                break;
            }
        }
        if read_back != self.anchors_walked {
            return Err(changed());
        }
        if let Some((&chain, &(seq, anchor_seq))) = gone.iter().next() {
            let end = self.heads.iter().find(|h| h.chain == chain).map_or(0, |h| h.seq);
            return Err(ChainError::AnchorMismatch {
                chain,
                seq,
                anchor_seq,
                problem: format!(
                    "but the chain ends at event {end} (events {} to {seq} deleted)",
                    end + 1
                ),
            }
            .into());
        }
        Ok(covered)
    }

    /// Checks one page's anchored heads (each with its anchor's sequence number on chain 1)
    /// against the events they name, looked up together; notes in `gone` the ones that are
    /// not there.
    async fn check_named(
        &self,
        store: &Store,
        named: &[(AnchoredHead, i64)],
        gone: &mut BTreeMap<i64, (i64, i64)>,
    ) -> Result<()> {
        let mut keys: Vec<(i64, i64)> = named
            .iter()
            .filter(|(h, _)| h.seq > 0)
            .map(|(h, _)| (h.chain, h.seq))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let found: HashMap<(i64, i64), String> = store
            .audit_events_at(&keys)
            .await?
            .into_iter()
            .map(|e| ((e.chain, e.seq), e.hash))
            .collect();
        for (h, anchor_seq) in named {
            let mismatch = |problem: &str| -> RuntimeError {
                ChainError::AnchorMismatch {
                    chain: h.chain,
                    seq: h.seq,
                    anchor_seq: *anchor_seq,
                    problem: problem.to_string(),
                }
                .into()
            };
            if h.seq == 0 {
                match self.opened.get(&h.chain) {
                    Some(opening) if opening.hash == h.hash => {}
                    Some(_) => return Err(mismatch("the chain's start, but not its opening event")),
                    None => return Err(ChainError::ChainNotOpened { chain: h.chain }.into()),
                }
                continue;
            }
            match found.get(&(h.chain, h.seq)) {
                Some(hash) if *hash == h.hash => {}
                Some(_) => return Err(mismatch("but it has another hash (rewritten)")),
                None => {
                    let furthest = gone.entry(h.chain).or_insert((h.seq, *anchor_seq));
                    if h.seq >= furthest.0 {
                        *furthest = (h.seq, *anchor_seq);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Walks one chain from its opening to its head, checking each link and each execution record
/// on the way. Returns how many events it holds.
async fn walk(rt: &Runtime, head: &AuditChainHead, opening: &Opening) -> Result<i64> {
    let store = rt.store();
    let chain = head.chain;
    let mut verifier = ChainVerifier::resume(0, &opening.hash);
    let mut after = 0;
    loop {
        let page = store.audit_chain_page(chain, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let full = page.len() as i64 == PAGE;
        // Events appended after the head was read are beyond it and not checked.
        let page: Vec<_> = page.into_iter().take_while(|e| e.seq <= head.seq).collect();
        for e in &page {
            verifier.push(e).map_err(|err| in_chain(chain, err))?;
        }
        let records = rt.execution_texts(&page).await?;
        for e in &page {
            check_execution_record(e, &records).map_err(|err| match err {
                RuntimeError::AuditBroken(error) => in_chain(chain, error),
                other => other,
            })?;
        }
        if after >= head.seq || !full {
            break;
        }
    }
    verifier
        .finish(head.seq, &head.hash)
        .map_err(|err| in_chain(chain, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event that extends `chain`'s head, as an instance's call would.
    async fn append_to(store: &Store, chain: i64, what: &str) {
        let head = other_heads(store)
            .await
            .unwrap()
            .into_iter()
            .find(|h| h.chain == chain)
            .unwrap();
        let (seq, at_ms, payload) = (
            head.seq + 1,
            slovo_core::time::now_ms(),
            format!("{{\"call\":\"{what}\"}}"),
        );
        let kind = "execution.finished";
        let event = AuditEvent {
            chain,
            seq,
            at_ms,
            kind: kind.into(),
            tool: None,
            actor: "test".into(),
            hash: event_hash(seq, at_ms, kind, None, "test", &payload, &head.hash),
            payload,
            prev_hash: head.hash,
        };
        assert!(store.append_event_at_head(&event).await.unwrap());
    }

    async fn anchors(store: &Store) -> Vec<AuditChainsAnchored> {
        let (head, _) = store.audit_head().await.unwrap();
        let events = store.audit_page(0, head + 1).await.unwrap();
        events
            .iter()
            .filter(|e| e.kind == kinds::AUDIT_CHAINS_ANCHORED)
            .map(|e| parse(e).unwrap())
            .collect()
    }

    /// Another checkpointer anchors the chains between this one's check and its append: this
    /// one's anchor, checked against older heads, must not follow it (it would name a head
    /// older than the anchor before it). Made to happen every time, where the concurrency test
    /// in `tests/audit_chains.rs` catches it only when the timing falls that way.
    #[tokio::test]
    async fn an_anchor_checked_before_another_anchor_came_in_is_not_appended() {
        let Some(url) = slovo_test_support::fresh_postgres_url().await else {
            return;
        };
        let store = Store::connect(&url).await.unwrap();
        let chain = store.open_audit_chain("instance-a", "test").await.unwrap();
        append_to(&store, chain, "first").await;

        let mut came_in = false;
        anchor_chains_checked_then(&store, || {
            let first_time = !std::mem::replace(&mut came_in, true);
            let store = store.clone();
            async move {
                if first_time {
                    // The chain moves, and another checkpointer anchors it.
                    append_to(&store, chain, "second").await;
                    anchor_chains(&store).await.unwrap();
                }
            }
        })
        .await
        .unwrap();

        let heads = other_heads(&store).await.unwrap();
        let newest = heads.iter().find(|h| h.chain == chain).unwrap();
        assert_eq!(newest.seq, 2);
        let anchors = anchors(&store).await;
        // Only the other checkpointer's anchor, naming the newest head: this one's was refused,
        // checked again and found nothing new to anchor.
        assert_eq!(anchors.len(), 1, "anchors: {anchors:?}");
        let named = anchors[0].chains.iter().find(|h| h.chain == chain).unwrap();
        assert_eq!((named.seq, &named.hash), (newest.seq, &newest.hash));
        store.close().await;
    }
}
