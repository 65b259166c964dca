//! Consumer tests of the front ends, standing in for the client teams: each
//! app's API client (the few lines a team would have in Swift, Kotlin or
//! TypeScript) runs against the Pact mock server and writes
//! `<app>-<bff>.json`, which `cargo xtask contracts` verifies against the
//! running BFF with the mocks behind it.

mod mobile_app;
mod web_app;
