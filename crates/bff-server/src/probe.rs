//! `<bff> probe`: is the instance on this machine ready? A container
//! health check (`docker-compose.yml`) with no HTTP client in the image:
//! one `GET /readyz` over a plain TCP connection to 127.0.0.1, 2 s at most.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `Ok` when `GET /readyz` on `127.0.0.1:port` answers `200`; otherwise
/// what happened instead.
pub(crate) fn ready(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let request = format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).map_err(|e| format!("no answer: {e}"))?;
    match &head {
        b"HTTP/1.1 200" => Ok(()),
        other => Err(format!("answered `{}`", String::from_utf8_lossy(other))),
    }
}
