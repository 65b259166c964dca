//! `cargo xtask test`: the README's test command. The suite starts real
//! servers of its own (`redis-server`, `haproxy` for the scale-out tests,
//! and `chromedriver` with Chromium for the browser tests), so this first
//! makes sure they
//! are installed: with the package manager when it can (root, or
//! password-less sudo, and `apt-get`), otherwise it stops at once with the
//! exact command to run. Then it runs `cargo test --workspace` with any
//! extra arguments (`cargo xtask test -- --nocapture`), and the scaffold's
//! end-to-end test (`new_bff::selftest`: five new BFFs in a copy of the
//! workspace, through CI's checks and `cargo xtask dev`).
//! `--no-scaffold` skips that last part, for a quick local loop.

use std::process::Command;

use anyhow::{Context as _, bail};

/// A program the tests run, and the Debian package that has it.
struct Requirement {
    program: &'static str,
    package: &'static str,
    why: &'static str,
}

/// What the test suite needs besides Rust.
const REQUIREMENTS: &[Requirement] = &[
    Requirement { program: "redis-server", package: "redis-server", why: "tests start real Redis servers" },
    Requirement {
        program: "haproxy",
        package: "haproxy",
        why: "the scale-out tests run BFF replicas behind a real HAProxy",
    },
    // chromium-driver depends on chromium, which it drives.
    Requirement {
        program: "chromedriver",
        package: "chromium-driver",
        why: "the dev console's browser test drives headless Chromium",
    },
];

/// Installs what is missing (or says how), then runs the suite.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let scaffold = !args.iter().any(|arg| arg == "--no-scaffold");
    let args: Vec<&String> = args.iter().filter(|arg| *arg != "--no-scaffold").collect();
    let missing: Vec<&Requirement> = REQUIREMENTS.iter().filter(|r| !on_path(r.program)).collect();
    if !missing.is_empty() {
        install(&missing)?;
    }
    let status = crate::cargo()
        .current_dir(crate::root())
        .args(["test", "--workspace"])
        .args(args)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed");
    }
    if scaffold {
        crate::new_bff::selftest()?;
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

fn install(missing: &[&Requirement]) -> anyhow::Result<()> {
    let packages: Vec<&str> = missing.iter().map(|r| r.package).collect();
    for requirement in missing {
        eprintln!("xtask test: `{}` is missing ({})", requirement.program, requirement.why);
    }
    let command = format!("apt-get update -qq && apt-get install -y -qq {}", packages.join(" "));
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let sudo = !root && Command::new("sudo").args(["-n", "true"]).status().is_ok_and(|s| s.success());
    if !on_path("apt-get") || !(root || sudo) {
        bail!(
            "install {} first, then run `cargo xtask test` again:\n  sudo {command}   (Debian, Ubuntu)\n  \
             brew install redis haproxy chromedriver   (macOS)",
            packages.join(" ")
        );
    }
    eprintln!("xtask test: installing with: {}{command}", if sudo { "sudo " } else { "" });
    let mut shell = if sudo { Command::new("sudo") } else { Command::new("sh") };
    if sudo {
        shell.args(["sh", "-c", &command]);
    } else {
        shell.args(["-c", &command]);
    }
    let status = shell.env("DEBIAN_FRONTEND", "noninteractive").status().context("running apt-get")?;
    if !status.success() {
        bail!("installing {} failed; install it by hand: sudo {command}", packages.join(" "));
    }
    Ok(())
}
