//! `spawn_app()`: mobile-bff on a loopback port with the mocks it calls behind it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bff_server::Config;
pub(crate) use bff_testkit::{TestApp, status_of};
use services_mock::Fleet;

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub(crate) async fn spawn_app_with(customize: impl FnOnce(&mut Config<mobile_bff::AppVersions>)) -> TestApp {
    bff_testkit::spawn(mobile_bff::bff(), customize).await
}

/// Asserts the body names no internal service, host or port.
pub(crate) fn assert_no_internals(reply: &bff_testkit::Reply, app: &TestApp) {
    bff_testkit::assert_no_internals(reply, &app.fleet);
}

/// The real `mobile-bff` binary, pointed at `fleet`, with its own admin
/// listener and `env` added: a process of its own, so a metrics recorder
/// and a trace exporter of its own.
pub(crate) struct Binary {
    child: Child,
    pub(crate) base: String,
    pub(crate) admin_base: String,
}

impl Binary {
    pub(crate) fn start(fleet: &Fleet, env: &[(&str, String)]) -> Binary {
        // Ports are picked free, then bound by the binary: another test may
        // take one in between (the binary then exits), so a start that ends
        // that way is tried again on other ports.
        for _ in 0..3 {
            if let Some(bff) = Self::try_start(fleet, env) {
                return bff;
            }
        }
        panic!("mobile-bff exited at start three times (its ports taken?)");
    }

    /// `None` when the binary exited before serving; waits up to 30 s (a
    /// debug build on a busy machine) before calling it stuck.
    fn try_start(fleet: &Fleet, env: &[(&str, String)]) -> Option<Binary> {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port()
        };
        let (port, admin_port) = (free(), free());
        let child = Command::new(env!("CARGO_BIN_EXE_mobile-bff"))
            .envs(bff_testkit::wire_env(fleet, mobile_bff::ENTRY, port))
            .env("MOBILE_BFF__SERVER__ADMIN_PORT", admin_port.to_string())
            // A hedge is sent when a call is slower than usual: its series
            // and spans (from closed sets too) would appear whenever timing says.
            .env("MOBILE_BFF__DOWNSTREAM__SERVICES__RECOMMENDATIONS__HEDGE__ENABLED", "false")
            .env_remove("REDIS_URL")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let mut bff = Binary {
            child,
            base: format!("http://127.0.0.1:{port}"),
            admin_base: format!("http://127.0.0.1:{admin_port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok();
            if up {
                return Some(bff);
            }
            if matches!(bff.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mobile-bff did not start within 30 s");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
