//! The accept loop's limits over real TCP: silent and slowloris connections
//! are closed at the header-read timeout, idle kept-alive ones at the idle
//! timeout, trickled bodies at the request timeout, and past the connection
//! cap the health endpoints still answer, while ordinary requests keep
//! being served throughout.
//!
//! Limits are set in milliseconds here so the tests take seconds; the
//! assertions are about which connections get closed and which requests
//! get answered, with generous ceilings, never about speed.

use std::time::Duration;

use bff_auth::Caller;
use bff_server::{Backbone, Bff, ServerConfig};
use bff_testkit::TestApp;
use services_mock::Fleet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[utoipa::path(get, path = "/whoami", security(("bearer" = [])), responses((status = 200, body = String)))]
async fn whoami(caller: Caller) -> String {
    caller.subject
}

/// Reads its whole body, so a trickled one keeps it waiting.
#[utoipa::path(post, path = "/echo", security(("bearer" = [])), responses((status = 200, body = String)))]
async fn echo(_caller: Caller, body: String) -> String {
    body
}

fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new().routes(routes!(whoami)).routes(routes!(echo))
}

const HEADER_READ_MS: u64 = 400;
const IDLE_MS: u64 = 1_500;
const REQUEST_MS: u64 = 1_500;

async fn spawn(limits: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let bff: Bff = Bff::new(bff_registry::entry("mobile-bff"), "0.0.0").screens(screens);
    let identity_only = Fleet::start_only(&[]).await.expect("identity mock");
    bff_testkit::spawn_with_fleet(bff, identity_only, |config| {
        config.server.header_read_timeout_ms = HEADER_READ_MS;
        config.server.idle_timeout_ms = IDLE_MS;
        config.server.request_timeout_ms = REQUEST_MS;
        limits(&mut config.server);
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.expect("connect")
}

/// When the server closed `stream` (EOF or reset), measured from `since`;
/// `None` if it was still open after `within`.
async fn closed_after(stream: &mut TcpStream, since: Instant, within: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    let end = since + within;
    loop {
        match timeout(end.saturating_duration_since(Instant::now()), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            // An answer (a 503 past the cap): keep reading until it closes.
            Ok(Ok(_)) => {}
        }
    }
}

/// One request on `stream`, the answer's head and body as text.
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n =
            timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("an answer").expect("read");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if n == 0 || text.split_once("\r\n\r\n").is_some_and(|(head, body)| complete(head, body)) {
            return text;
        }
    }
}

fn complete(head: &str, body: &str) -> bool {
    let length = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok());
    length.is_some_and(|length| body.len() >= length)
}

fn get(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: bff\r\nauthorization: Bearer {token}\r\n\r\n")
}

#[tokio::test]
async fn silent_half_sent_and_slowloris_connections_are_closed_while_requests_keep_being_served() {
    let app = spawn(|_| {}).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(connect(&app).await);
    }
    let mut half_sent = Vec::new();
    for _ in 0..20 {
        let mut stream = connect(&app).await;
        stream.write_all(b"GET /whoami HTTP/1.1\r\nhost: bff\r\n").await.expect("write");
        half_sent.push(stream);
    }
    // Slowloris: a header line a byte at a time, every 50 ms, forever.
    let mut slowloris = Vec::new();
    for _ in 0..10 {
        let stream = connect(&app).await;
        let (mut read, mut write) = stream.into_split();
        let trickle = tokio::spawn(async move {
            let _ = write.write_all(b"GET /whoami HTTP/1.1\r\n").await;
            for byte in b"x-slow: ".iter().cycle() {
                if write.write_all(&[*byte]).await.is_err() {
                    return;
                }
                sleep(Duration::from_millis(50)).await;
            }
        });
        let closed = async move {
            let mut buf = [0u8; 64];
            let end = started + Duration::from_secs(10);
            let closed = timeout(end.saturating_duration_since(Instant::now()), read.read(&mut buf)).await;
            matches!(closed, Ok(Ok(0) | Err(_))).then(|| started.elapsed())
        };
        slowloris.push((tokio::spawn(closed), trickle));
    }
    // Ordinary requests meanwhile, on new connections each.
    let token = app.token("u-1");
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(HEADER_READ_MS * 2) {
        let mut stream = connect(&app).await;
        let answer = exchange(&mut stream, &get("/whoami", &token)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        served += 1;
    }
    assert!(served > 0);
    let floor = Duration::from_millis(HEADER_READ_MS);
    for (kind, streams) in [("silent", &mut silent), ("half-sent", &mut half_sent)] {
        for stream in streams.iter_mut() {
            let closed = closed_after(stream, started, Duration::from_secs(10)).await;
            let closed = closed.unwrap_or_else(|| panic!("a {kind} connection was still open after 10 s"));
            assert!(closed >= floor, "a {kind} connection was closed before the timeout: {closed:?}");
        }
    }
    for (closed, trickle) in slowloris {
        let closed = closed.await.expect("reader").expect("a slowloris connection was still open after 10 s");
        assert!(closed >= floor, "closed before the timeout: {closed:?}");
        trickle.abort();
    }
    // And the server is still fine.
    assert_eq!(app.get("/whoami").await.status, 200);
}

#[tokio::test]
async fn a_kept_alive_connection_waits_for_its_next_request_until_the_idle_timeout() {
    let app = spawn(|_| {}).await;
    let token = app.token("u-1");
    let mut stream = connect(&app).await;
    let first = exchange(&mut stream, &get("/whoami", &token)).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Idle for twice the header-read timeout: the header clock must not be
    // running between requests, or kept-alive connections would die young.
    sleep(Duration::from_millis(HEADER_READ_MS * 2)).await;
    let second = exchange(&mut stream, &get("/whoami", &token)).await;
    assert!(second.starts_with("HTTP/1.1 200"), "the kept-alive connection was closed early: {second}");
    let idle_from = Instant::now();
    let closed = closed_after(&mut stream, idle_from, Duration::from_secs(10)).await;
    let closed = closed.expect("an idle connection was still open after 10 s");
    // The server's idle clock starts when it has written the answer, a hair
    // before this side has read it: allow that, and no more than that.
    let floor = Duration::from_millis(IDLE_MS - 50);
    assert!(closed >= floor, "closed before the idle timeout: {closed:?}");
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_request_timeout() {
    let app = spawn(|_| {}).await;
    let token = app.token("u-1");
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: bff\r\nauthorization: Bearer {token}\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n"
    );
    // Before writing: the server's request clock starts once it has the head.
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.expect("write");
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        while write.write_all(b"x").await.is_ok() {
            sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let closed = timeout(Duration::from_secs(10), read.read(&mut buf)).await;
    trickle.abort();
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "still open after 10 s, or answered: {closed:?}");
    assert!(started.elapsed() >= Duration::from_millis(REQUEST_MS), "closed early: {:?}", started.elapsed());
    // A whole body in time is answered as usual.
    let mut stream = connect(&app).await;
    let post = format!(
        "POST /echo HTTP/1.1\r\nhost: bff\r\nauthorization: Bearer {token}\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
    );
    let answer = exchange(&mut stream, &post).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"), "{answer}");
}

#[tokio::test]
async fn past_the_connection_cap_health_checks_answer_and_the_rest_is_refused() {
    const CAP: usize = 8;
    let app = spawn(|server| {
        server.max_connections = CAP;
        // Long enough that the held connections stay open for the test.
        server.header_read_timeout_ms = 10_000;
    })
    .await;
    let token = app.token("u-1");
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(connect(&app).await);
    }
    // The cap is taken: a probe still answers, on a connection closed after it.
    let mut probe = connect(&app).await;
    let health = exchange(&mut probe, "GET /healthz HTTP/1.1\r\nhost: bff\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.to_ascii_lowercase().contains("connection: close"), "{health}");
    let mut other = connect(&app).await;
    let refused = exchange(&mut other, &get("/whoami", &token)).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("\"code\":\"overloaded\""), "{refused}");
    assert!(closed_after(&mut other, Instant::now(), Duration::from_secs(5)).await.is_some());
    assert!(closed_after(&mut probe, Instant::now(), Duration::from_secs(5)).await.is_some());

    // The reserve taken too: closed as soon as accepted.
    let mut reserve = Vec::new();
    for _ in 0..bff_server::listen::RESERVE {
        reserve.push(connect(&app).await);
    }
    // Give the server a moment to have accepted them all.
    sleep(Duration::from_millis(200)).await;
    let mut over = connect(&app).await;
    let closed = closed_after(&mut over, Instant::now(), Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a connection past the cap and its reserve was kept");

    // Slots come back when connections close.
    drop(held);
    drop(reserve);
    let mut answered = false;
    for _ in 0..50 {
        let mut stream = connect(&app).await;
        if exchange(&mut stream, &get("/whoami", &token)).await.starts_with("HTTP/1.1 200") {
            answered = true;
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "requests were not served again after the held connections closed");
}
