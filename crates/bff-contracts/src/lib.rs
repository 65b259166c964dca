//! The contract checks behind `cargo xtask contracts`.
//!
//! * [`openapi`]: each BFF's generated OpenAPI document against the committed
//!   `openapi/<bff>.json` (drift);
//! * [`breaking`]: each document against its released baseline
//!   (`openapi/baseline/<bff>.json`), rule by rule, with acknowledgements;
//! * [`verify`]: every Pact in `contracts/` replayed against its provider
//!   (a mock service, or a BFF with the mocks behind it) with `pact_verifier`;
//! * [`check`]: the whole run — the consumer × provider matrix and every
//!   failure explained — and `--rebaseline`.

pub mod baseline;
pub mod breaking;
pub mod check;
pub mod openapi;
pub mod verify;
