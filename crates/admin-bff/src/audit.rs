//! The append-only audit trail: one JSON line per admin request, allowed or
//! denied, each carrying the SHA-256 of the previous line, so editing,
//! removing or reordering any record breaks the chain from there on.
//!
//! ```text
//! hash = hex(sha256(prevHash + "\n" + <the record serialized without its hash>))
//! ```
//!
//! The first record's `prevHash` is 64 zeros. `admin-bff verify-audit <file>`
//! (or [`verify`]) recomputes every hash and names the first bad line.
//! Limits, stated plainly: a chain detects edits but not truncation of its
//! tail or replacement of the whole file; ship the lines (or the latest hash)
//! somewhere the BFF cannot write to make those detectable too.
//!
//! **Writing.** Requests never touch the file: they hand their record to a
//! bounded queue ([`AuditConfig::queue_capacity`](crate::AuditConfig)) read
//! by one writer thread, which writes what has queued up and syncs it once
//! (group commit) before acknowledging each record. What is promised:
//!
//! * a request by someone we know (a verified token: allowed, refused by
//!   role, failed) is answered only once its record is on disk (`fsync`ed);
//!   if the queue is full or the disk fails, the request fails closed
//!   (`503`) instead of going unaudited;
//! * requests whose caller nobody established (no token, a forged or
//!   expired one, or refused by the edge before authentication: unknown
//!   paths, `405`, `413`) are counted, not written one by one: one record
//!   per source address, action and problem code per interval ([`AuditConfig::denial_interval_ms`](crate::AuditConfig)),
//!   with the count and the first and last time. They are answered at once;
//!   a crash loses at most one interval of these counts. A flood of them
//!   costs a few lines a second, and the chain stays verifiable (aggregates
//!   are chained like any record);
//! * every field a caller controls is bounded ([`MAX_FIELD_CHARS`]; longer
//!   values are cut and the record says `truncated`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prevHash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why the audit trail could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened, read or written.
    #[error("audit file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The writer cannot take another record now (its queue is full) or is
    /// gone: the request must fail closed.
    #[error("the audit trail cannot take a record now: {0}")]
    Unavailable(&'static str),
    /// The chain is broken at `line` (1-based).
    #[error("audit chain broken at line {line}: {problem}")]
    Broken {
        /// The first bad line.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}

/// What happened to a request, read from the problem code it was answered
/// with (never from its status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Served: no problem, or one about the request itself (an unknown
    /// target, a malformed id): the caller was let in.
    Allowed,
    /// Refused: not authenticated, or not allowed (`auth.*`).
    Denied,
    /// Let in but refused as a request (`request.*`: a malformed id, a body
    /// too large, a method the route does not have).
    Rejected,
    /// Failed on our side or downstream (`dependency.*`, `internal`, ...).
    Failed,
}

impl Outcome {
    /// The outcome of a request answered with `code` (`None`: no problem).
    pub fn of(code: Option<bff_error::ErrorCode>) -> Outcome {
        use bff_error::ErrorCode;
        match code {
            Some(code) if code.is_denial() => Outcome::Denied,
            Some(code) if code.is_server_fault() => Outcome::Failed,
            Some(
                ErrorCode::RequestInvalid
                | ErrorCode::RequestTooLarge
                | ErrorCode::MethodNotAllowed
                | ErrorCode::IdempotencyKeyMissing
                | ErrorCode::IdempotencyKeyReused,
            ) => Outcome::Rejected,
            _ => Outcome::Allowed,
        }
    }
}

/// One audit record, as written (field order is part of the hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// The request id, generated here (never the caller's). For an
    /// aggregate of denials: `denials`.
    pub request_id: String,
    /// The `x-request-id` the caller sent, if any (bounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_request_id: Option<String>,
    /// The peer address the request came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Who: the token's subject, or `null` when unauthenticated.
    pub actor: Option<String>,
    /// The role the request was made with (`admin`, `support`), if any.
    pub role: Option<String>,
    /// What: `METHOD /route/{param}`.
    pub action: String,
    /// On what: the path parameters, e.g. the user id.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The problem `code` answered, when the request was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The HTTP status sent.
    pub status: u16,
    /// Why, for an action that takes a reason (a lock), as the caller gave
    /// it (at most [`MAX_REASON_CHARS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A caller-controlled field was longer than [`MAX_FIELD_CHARS`] and cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// For an aggregate: how many requests it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// For an aggregate: when the last of them came (`time` is the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash; `None` only while it is being computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditRecord {
    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = None;
        let body = serde_json::to_string(&unhashed).unwrap_or_default();
        let digest = Sha256::digest(format!("{}\n{body}", self.prev_hash).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Longest value kept of a field the caller controls (target, caller's
/// request id); longer ones are cut and the record marked `truncated`.
pub const MAX_FIELD_CHARS: usize = 128;

/// Longest reason kept (the handlers accept 500).
pub const MAX_REASON_CHARS: usize = 500;

/// The reason a handler puts on its response for the record (a lock's).
#[derive(Debug, Clone)]
pub struct Reason(pub String);

/// `value` cut to [`MAX_FIELD_CHARS`], and whether it was.
fn bounded(value: String) -> (String, bool) {
    match value.char_indices().nth(MAX_FIELD_CHARS) {
        Some((end, _)) => (value[..end].to_owned(), true),
        None => (value, false),
    }
}

/// What a request contributes to its record; the log adds the chain.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The request id (generated by the BFF).
    pub request_id: String,
    /// The caller's `x-request-id`, if any.
    pub caller_request_id: Option<String>,
    /// The peer address.
    pub source: Option<String>,
    /// Who.
    pub actor: Option<String>,
    /// With which role.
    pub role: Option<String>,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The problem code answered, if any.
    pub code: Option<String>,
    /// The status sent.
    pub status: u16,
    /// The reason given, for actions that take one.
    pub reason: Option<String>,
}

/// How the trail's writer is tuned (from [`crate::AuditConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Records waiting for the writer, at most; past it requests fail closed.
    pub queue_capacity: usize,
    /// How often aggregated denials are written.
    pub denial_interval: Duration,
}

/// Aggregated denials are keyed by source, action and code; past this many
/// keys in one interval, further ones are counted under source `*`.
const MAX_DENIAL_KEYS: usize = 1024;

type DenialKey = (String, String, Option<String>);

#[derive(Debug)]
struct Denials {
    first: SystemTime,
    last: SystemTime,
    count: u64,
    status: u16,
    outcome: Outcome,
}

/// One record waiting to be written, and who to tell when it is on disk.
struct Job {
    entry: Entry,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The audit trail of one admin-bff process: a handle on its writer thread.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    queue: SyncSender<Job>,
    denials: Arc<Mutex<HashMap<DenialKey, Denials>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("request_id", &self.entry.request_id).finish()
    }
}

impl AuditLog {
    /// Opens (or creates) the trail at `path`, verifying the existing chain
    /// so new records continue it, and starts its writer thread. A broken
    /// chain is an error: appending to it would blur the evidence; move the
    /// file aside and investigate.
    pub fn open(path: &Path, settings: WriterSettings) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io { path: path.to_owned(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let (seq, hash) = if path.exists() { verify(path)? } else { (0, GENESIS.to_owned()) };
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        let (queue, jobs) = sync_channel(settings.queue_capacity.max(1));
        let denials = Arc::new(Mutex::new(HashMap::new()));
        let writer = Writer { path: path.to_owned(), file, seq, hash, denials: Arc::clone(&denials) };
        std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run(&jobs, settings.denial_interval))
            .map_err(io)?;
        Ok(AuditLog { path: path.to_owned(), queue, denials })
    }

    /// Records `entry` and resolves once it is on disk. Fails at once when
    /// the queue is full (the caller must fail closed), or with the write's
    /// error.
    pub async fn record(&self, entry: Entry) -> Result<(), AuditError> {
        let (done, written) = tokio::sync::oneshot::channel();
        match self.queue.try_send(Job { entry, done }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(AuditError::Unavailable("queue full")),
            Err(TrySendError::Disconnected(_)) => return Err(AuditError::Unavailable("writer stopped")),
        }
        match written.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => {
                Err(AuditError::Io { path: self.path.clone(), source: std::io::Error::other(reason) })
            }
            Err(_) => Err(AuditError::Unavailable("writer stopped")),
        }
    }

    /// Counts a request whose caller nobody established, for the next
    /// aggregate record of its source, action and code. Never waits.
    pub fn count_anonymous(&self, entry: &Entry) {
        let now = SystemTime::now();
        let mut denials = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        let source = entry.source.clone().unwrap_or_default();
        let mut key = (source, entry.action.clone(), entry.code.clone());
        if !denials.contains_key(&key) && denials.len() >= MAX_DENIAL_KEYS {
            key.0 = "*".to_owned();
        }
        let slot = denials.entry(key).or_insert(Denials {
            first: now,
            last: now,
            count: 0,
            status: entry.status,
            outcome: entry.outcome,
        });
        slot.count += 1;
        slot.last = now;
    }
}

/// The writer thread's state: the file and the chain's tail.
struct Writer {
    path: PathBuf,
    file: File,
    seq: u64,
    hash: String,
    denials: Arc<Mutex<HashMap<DenialKey, Denials>>>,
}

/// Records written per sync, at most.
const MAX_BATCH: usize = 512;

impl Writer {
    fn run(mut self, jobs: &Receiver<Job>, interval: Duration) {
        let mut next_flush = Instant::now() + interval;
        loop {
            let wait = next_flush.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(wait) {
                Ok(first) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match jobs.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let (entries, waiting): (Vec<Entry>, Vec<_>) =
                        batch.into_iter().map(|job| (job.entry, job.done)).unzip();
                    let outcome = self.write(entries.into_iter().map(record_of).collect());
                    for done in waiting {
                        let _ = done.send(outcome.clone());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush_denials();
                    return;
                }
            }
            if Instant::now() >= next_flush {
                self.flush_denials();
                next_flush = Instant::now() + interval;
            }
        }
    }

    fn flush_denials(&mut self) {
        let taken = std::mem::take(&mut *self.denials.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.is_empty() {
            return;
        }
        let mut records: Vec<AuditRecord> = taken
            .into_iter()
            .map(|((source, action, code), denials)| AuditRecord {
                seq: 0,
                time: rfc3339(denials.first),
                request_id: "denials".to_owned(),
                caller_request_id: None,
                source: Some(source),
                actor: None,
                role: None,
                action,
                target: None,
                outcome: denials.outcome,
                code,
                status: denials.status,
                reason: None,
                truncated: false,
                count: Some(denials.count),
                until: Some(rfc3339(denials.last)),
                prev_hash: String::new(),
                hash: None,
            })
            .collect();
        records.sort_by(|a, b| (&a.time, &a.source, &a.action).cmp(&(&b.time, &b.source, &b.action)));
        if let Err(error) = self.write(records) {
            tracing::error!(%error, "aggregated denials not written");
        }
    }

    /// Chains, writes and syncs `records` (one sync for all).
    fn write(&mut self, records: Vec<AuditRecord>) -> Result<(), String> {
        let (mut seq, mut hash) = (self.seq, self.hash.clone());
        let mut lines = String::new();
        for mut record in records {
            seq += 1;
            record.seq = seq;
            record.prev_hash = hash;
            let computed = record.compute_hash();
            record.hash = Some(computed.clone());
            hash = computed;
            lines.push_str(&serde_json::to_string(&record).unwrap_or_default());
            lines.push('\n');
        }
        let written = self.file.write_all(lines.as_bytes()).and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // The chain's tail stays where the file is known good; a partial
            // line is what `verify` will point at.
            tracing::error!(path = %self.path.display(), %error, "audit write failed");
            return Err(error.to_string());
        }
        (self.seq, self.hash) = (seq, hash);
        Ok(())
    }
}

/// The record of one request (the chain's fields are set by the writer).
fn record_of(entry: Entry) -> AuditRecord {
    let (target, target_cut) = match entry.target.map(bounded) {
        Some((target, cut)) => (Some(target), cut),
        None => (None, false),
    };
    let (caller_request_id, id_cut) = match entry.caller_request_id.map(bounded) {
        Some((id, cut)) => (Some(id), cut),
        None => (None, false),
    };
    AuditRecord {
        seq: 0,
        time: rfc3339(SystemTime::now()),
        request_id: entry.request_id,
        caller_request_id,
        source: entry.source,
        actor: entry.actor.map(|actor| bounded(actor).0),
        role: entry.role,
        action: entry.action,
        target,
        outcome: entry.outcome,
        code: entry.code,
        status: entry.status,
        reason: entry.reason.map(|reason| match reason.char_indices().nth(MAX_REASON_CHARS) {
            Some((end, _)) => reason[..end].to_owned(),
            None => reason,
        }),
        truncated: target_cut || id_cut,
        count: None,
        until: None,
        prev_hash: String::new(),
        hash: None,
    }
}

/// Verifies the chain in `path`; returns the last `(seq, hash)`.
pub fn verify(path: &Path) -> Result<(u64, String), AuditError> {
    let io = |source| AuditError::Io { path: path.to_owned(), source };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let (mut seq, mut hash) = (0u64, GENESIS.to_owned());
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        let broken = |problem: String| AuditError::Broken { line: index + 1, problem };
        let record: AuditRecord =
            serde_json::from_str(&line).map_err(|e| broken(format!("not a record: {e}")))?;
        if record.seq != seq + 1 {
            return Err(broken(format!("seq {} follows {seq}", record.seq)));
        }
        if record.prev_hash != hash {
            return Err(broken("prevHash is not the previous record's hash".to_owned()));
        }
        let recomputed = record.compute_hash();
        if record.hash.as_deref() != Some(recomputed.as_str()) {
            return Err(broken("hash does not match the record's content".to_owned()));
        }
        seq = record.seq;
        hash = recomputed;
    }
    Ok((seq, hash))
}

/// RFC 3339 UTC with milliseconds, from the civil-from-days algorithm
/// (H. Hinnant), to avoid a date crate for one format.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(n: u16) -> Entry {
        Entry {
            request_id: format!("r-{n}"),
            caller_request_id: None,
            source: Some("127.0.0.1".to_owned()),
            actor: Some("s-1".to_owned()),
            role: Some("admin".to_owned()),
            action: "GET /admin/v1/users/{id}".to_owned(),
            target: Some("u-1".to_owned()),
            outcome: Outcome::Allowed,
            code: None,
            status: 200,
            reason: None,
        }
    }

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("admin-bff-audit-{name}-{}.jsonl", std::process::id()))
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_123); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.123Z");
    }

    const SETTINGS: WriterSettings =
        WriterSettings { queue_capacity: 64, denial_interval: Duration::from_millis(50) };

    #[tokio::test]
    async fn a_chain_verifies_continues_after_reopen_and_breaks_on_any_edit() {
        let path = temp_path("chain");
        let _ = std::fs::remove_file(&path);
        {
            let log = AuditLog::open(&path, SETTINGS).expect("open");
            for n in 0..3 {
                log.record(entry(n)).await.expect("record");
            }
        }
        let log = AuditLog::open(&path, SETTINGS).expect("reopen verifies");
        log.record(entry(9)).await.expect("record");
        assert_eq!(verify(&path).expect("valid").0, 4);

        let text = std::fs::read_to_string(&path).expect("read");
        let edited = text.replacen("\"status\":200", "\"status\":201", 1);
        std::fs::write(&path, edited).expect("write");
        match verify(&path) {
            Err(AuditError::Broken { line, .. }) => assert_eq!(line, 1),
            other => panic!("an edited record must break the chain, got {other:?}"),
        }
        assert!(AuditLog::open(&path, SETTINGS).is_err(), "refuses to append to a broken chain");

        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).expect("write");
        assert!(
            matches!(verify(&path), Err(AuditError::Broken { line: 2, .. })),
            "a removed record breaks it"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn long_fields_are_cut_and_marked_and_anonymous_denials_are_counted_not_written() {
        let path = temp_path("bounded");
        let _ = std::fs::remove_file(&path);
        let log = AuditLog::open(&path, SETTINGS).expect("open");
        let mut long = entry(1);
        long.target = Some("u".repeat(60_000));
        log.record(long).await.expect("record");
        let mut anonymous = entry(2);
        anonymous.actor = None;
        anonymous.outcome = Outcome::Denied;
        anonymous.code = Some("auth.invalid_token".to_owned());
        anonymous.status = 401;
        for _ in 0..1_000 {
            log.count_anonymous(&anonymous);
        }
        drop(log); // the writer flushes what it counted before it stops
        let mut records = Vec::new();
        for _ in 0..100 {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            records = text.lines().map(|l| serde_json::from_str::<AuditRecord>(l).expect("record")).collect();
            if records.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(records[0].target.as_deref().map(str::len), Some(MAX_FIELD_CHARS));
        assert!(records[0].truncated);
        assert_eq!(
            (records[1].count, records[1].outcome, records[1].request_id.as_str()),
            (Some(1_000), Outcome::Denied, "denials")
        );
        assert_eq!(verify(&path).expect("chain intact").0, 2);
        let _ = std::fs::remove_file(&path);
    }
}
