//! mobile-bff integration tests: the real app on a loopback port, the real
//! mocks behind it, real signed tokens.
