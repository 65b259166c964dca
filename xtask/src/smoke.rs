//! `cargo xtask smoke`: one request per BFF of the registry against a
//! running stack (`cargo xtask dev`), as its client would make it, checked
//! against the entry's expectation. CI runs it after starting the stack.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bff_registry::{Auth, BFFS, Bff};

use crate::{bin_dir, cargo_build};

/// Runs the smoke request of every BFF; fails on the first that is not as expected.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(extra) = args.first() {
        bail!("`smoke` takes no arguments (got `{extra}`)");
    }
    // The stack's own services-mock, as `cargo xtask dev` built it: it mints
    // the credentials the stack accepts.
    if !bin_dir().join("services-mock").exists() {
        cargo_build(&["services-mock"], true)?;
    }
    for bff in BFFS {
        let credential = credential(bff)?;
        // A BFF that precomputes content may need a moment after start-up:
        // a few tries, a second apart, before calling it broken.
        let mut tries = 0;
        let (status, body) = loop {
            tries += 1;
            let (status, body) = get(bff.port, bff.smoke.path, bff.auth, &credential)
                .with_context(|| format!("{}: is the stack running? (cargo xtask dev)", bff.name))?;
            if (status == 200 && body.contains(bff.smoke.expect)) || tries >= 10 {
                break (status, body);
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        if status != 200 || !body.contains(bff.smoke.expect) {
            bail!(
                "{}: GET {} answered {status}, expected 200 with `{}`:\n{body}",
                bff.name,
                bff.smoke.path,
                bff.smoke.expect
            );
        }
        println!("smoke ok  {:<14} GET {} -> {status}", bff.name, bff.smoke.path);
        let (status, _) = get(bff.port, "/openapi.json", bff.auth, "")?;
        if status != 200 {
            bail!("{}: GET /openapi.json answered {status}", bff.name);
        }
    }
    Ok(())
}

/// What the BFF's caller presents: a bearer token, or (session mode) the
/// session cookie of a real login, both from `services-mock token`.
pub(crate) fn credential(bff: &Bff) -> anyhow::Result<String> {
    let output = Command::new(bin_dir().join("services-mock"))
        .args(["token", "--client", bff.name, "--user", bff.smoke.caller])
        .output()
        .context("running services-mock token")?;
    if !output.status.success() {
        bail!("{}: no credential: {}", bff.name, String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `GET path` on loopback `port` with the credential; the status and the
/// (de-chunked) body.
pub(crate) fn get(port: u16, path: &str, auth: Auth, credential: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let header = match (auth, credential.is_empty()) {
        (_, true) => String::new(),
        (Auth::Session, false) => format!("Cookie: {credential}\r\n"),
        (_, false) => format!("Authorization: Bearer {credential}\r\n"),
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{header}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP response")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status")?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    Ok((status, if chunked { dechunk(body) } else { body.to_owned() }))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(super::dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }
}
