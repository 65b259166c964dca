//! `bff-load hold`: what open connections cost a BFF in memory.
//!
//! Opens `--connections` keep-alive connections to the BFF, asks
//! `--path` once on each (so the server has read a request and written an
//! answer on every one: its buffers exist), holds them all open, and reports
//! the BFF's resident memory (`VmRSS` of `/proc/<pid>/status`) and open
//! descriptors before, while they are held, and after they are closed.
//! Connections the BFF refuses past its `server.max_connections` are counted
//! apart: those are the cap at work, not a failure of the tool.
//!
//! Raw HTTP/1.1 on `tokio` sockets rather than reqwest: a client pool would
//! share connections, and the point is one request per connection.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const USAGE: &str = "usage: bff-load hold --bff-pid PID [--bff HOST:PORT] [--connections N] [--path P]
  --bff HOST:PORT   the BFF's listener (127.0.0.1:8081, mobile-bff)
  --bff-pid PID     the BFF's process, for its VmRSS and descriptors (required)
  --connections N   connections to open and hold (10000); the tool needs N descriptors (ulimit -n)
  --path P          asked once on each connection (/healthz)";

/// Opened in parallel at most this many at a time (a burst the size of the
/// listen backlog would see SYNs dropped and a second's retransmit).
const OPENING_AT_ONCE: usize = 256;

/// `bff-load hold ...`.
pub(crate) async fn run(args: &[String]) -> anyhow::Result<()> {
    let (mut bff, mut pid, mut connections, mut path) =
        ("127.0.0.1:8081".to_owned(), None::<u32>, 10_000usize, "/healthz".to_owned());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value =
            |name: &str| args.next().cloned().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--bff" => bff = value("--bff")?,
            "--bff-pid" => pid = Some(value("--bff-pid")?.parse().context("--bff-pid")?),
            "--connections" => connections = value("--connections")?.parse().context("--connections")?,
            "--path" => path = value("--path")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    let pid = pid.with_context(|| format!("--bff-pid is required\n{USAGE}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {bff}\r\n\r\n");

    let idle = Sample::of(pid)?;
    println!("idle:      {idle}");
    let mut held = Vec::with_capacity(connections);
    let mut refused = 0usize;
    let mut opened = 0usize;
    while opened < connections {
        let batch = OPENING_AT_ONCE.min(connections - opened);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let (bff, request) = (bff.clone(), request.clone());
            tasks.spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), open(&bff, &request))
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 10 s")))
            });
        }
        while let Some(outcome) = tasks.join_next().await {
            match outcome.context("an opening task")? {
                Ok(Some(stream)) => held.push(stream),
                Ok(None) => refused += 1,
                Err(error) => bail!("opening a connection: {error:#}"),
            }
        }
        opened += batch;
    }
    // Let the server settle (tasks parked, buffers released or kept).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let holding = Sample::of(pid)?;
    println!("holding:   {holding}  ({} answered and held, {refused} closed by the BFF)", held.len());
    if !held.is_empty() {
        let per = (holding.rss_kib.saturating_sub(idle.rss_kib)) as f64 / held.len() as f64;
        println!("per held connection: {per:.1} KiB of RSS");
    }
    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("closed:    {}", Sample::of(pid)?);
    Ok(())
}

/// One connection: `Some` once the request was answered (the connection
/// still open), `None` if the BFF closed it instead (its cap).
async fn open(bff: &str, request: &str) -> anyhow::Result<Option<TcpStream>> {
    let mut stream = TcpStream::connect(bff).await.with_context(|| format!("connecting to {bff}"))?;
    if stream.write_all(request.as_bytes()).await.is_err() {
        return Ok(None);
    }
    let mut answer = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    loop {
        let read = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(read) => read,
        };
        answer.extend_from_slice(&buffer[..read]);
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            if head.contains("connection: close") {
                return Ok(None);
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return Ok(Some(stream));
            }
        }
    }
}

/// A process's resident memory and open descriptors.
struct Sample {
    rss_kib: u64,
    descriptors: usize,
}

impl Sample {
    fn of(pid: u32) -> anyhow::Result<Sample> {
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")?;
        let descriptors =
            std::fs::read_dir(format!("/proc/{pid}/fd")).context("reading /proc/<pid>/fd")?.count();
        Ok(Sample { rss_kib, descriptors })
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VmRSS {:.1} MiB, {} descriptors", self.rss_kib as f64 / 1024.0, self.descriptors)
    }
}
