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

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

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
    /// Failed on our side or downstream (`dependency.*`, `internal`, ...).
    Failed,
}

impl Outcome {
    /// The outcome of a request answered with `code` (`None`: no problem).
    pub fn of(code: Option<bff_error::ErrorCode>) -> Outcome {
        match code {
            Some(code) if code.is_denial() => Outcome::Denied,
            Some(code) if code.is_server_fault() => Outcome::Failed,
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
    /// The request id (`x-request-id`).
    pub request_id: String,
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

/// What a request contributes to its record; the log adds the chain.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The request id.
    pub request_id: String,
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
}

#[derive(Debug)]
struct Tail {
    file: File,
    seq: u64,
    hash: String,
}

/// The audit trail of one admin-bff process. Appends are serialized and
/// flushed to disk before the response leaves.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    tail: Mutex<Tail>,
}

impl AuditLog {
    /// Opens (or creates) the trail at `path`, verifying the existing chain
    /// so new records continue it. A broken chain is an error: appending to
    /// it would blur the evidence; move the file aside and investigate.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io { path: path.to_owned(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let (seq, hash) = if path.exists() { verify(path)? } else { (0, GENESIS.to_owned()) };
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok(AuditLog { path: path.to_owned(), tail: Mutex::new(Tail { file, seq, hash }) })
    }

    /// Appends one record and syncs it to disk.
    pub fn append(&self, entry: Entry) -> Result<AuditRecord, AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = AuditRecord {
            seq: tail.seq + 1,
            time: rfc3339(SystemTime::now()),
            request_id: entry.request_id,
            actor: entry.actor,
            role: entry.role,
            action: entry.action,
            target: entry.target,
            outcome: entry.outcome,
            code: entry.code,
            status: entry.status,
            prev_hash: tail.hash.clone(),
            hash: None,
        };
        let hash = record.compute_hash();
        record.hash = Some(hash.clone());
        let mut line = serde_json::to_string(&record).unwrap_or_default();
        line.push('\n');
        let io = |source| AuditError::Io { path: self.path.clone(), source };
        tail.file.write_all(line.as_bytes()).map_err(io)?;
        tail.file.sync_data().map_err(io)?;
        tail.seq = record.seq;
        tail.hash = hash;
        Ok(record)
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
            actor: Some("s-1".to_owned()),
            role: Some("admin".to_owned()),
            action: "GET /admin/v1/users/{id}".to_owned(),
            target: Some("u-1".to_owned()),
            outcome: Outcome::Allowed,
            code: None,
            status: 200,
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

    #[test]
    fn a_chain_verifies_continues_after_reopen_and_breaks_on_any_edit() {
        let path = temp_path("chain");
        let _ = std::fs::remove_file(&path);
        {
            let log = AuditLog::open(&path).expect("open");
            for n in 0..3 {
                log.append(entry(n)).expect("append");
            }
        }
        let log = AuditLog::open(&path).expect("reopen verifies");
        assert_eq!(log.append(entry(9)).expect("append").seq, 4);
        assert_eq!(verify(&path).expect("valid").0, 4);

        let text = std::fs::read_to_string(&path).expect("read");
        let edited = text.replacen("\"status\":200", "\"status\":201", 1);
        std::fs::write(&path, edited).expect("write");
        match verify(&path) {
            Err(AuditError::Broken { line, .. }) => assert_eq!(line, 1),
            other => panic!("an edited record must break the chain, got {other:?}"),
        }
        assert!(AuditLog::open(&path).is_err(), "refuses to append to a broken chain");

        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).expect("write");
        assert!(
            matches!(verify(&path), Err(AuditError::Broken { line: 2, .. })),
            "a removed record breaks it"
        );
        let _ = std::fs::remove_file(&path);
    }
}
