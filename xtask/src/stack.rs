//! What the local stack consists of. Adding a BFF means adding a line to
//! [`BFFS`]; `cargo xtask dev` and the docker-compose check pick it up.

/// A BFF binary of the workspace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bff {
    /// Package and binary name.
    pub(crate) package: &'static str,
    /// Default port (must equal the crate's `Config::default()`; a test checks).
    pub(crate) port: u16,
    /// Environment prefix of its configuration.
    pub(crate) env_prefix: &'static str,
    /// Routes to show in the `dev` table.
    pub(crate) routes: &'static str,
}

/// Every BFF binary.
pub(crate) const BFFS: &[Bff] = &[
    Bff {
        package: "web-bff",
        port: 8080,
        env_prefix: "WEB_BFF",
        routes: "GET /auth/login, GET /v1/home (session cookie)",
    },
    Bff {
        package: "mobile-bff",
        port: 8081,
        env_prefix: "MOBILE_BFF",
        routes: "GET /v1/home, GET /v1/product-page/{id}",
    },
    Bff {
        package: "partner-bff",
        port: 8082,
        env_prefix: "PARTNER_BFF",
        routes: "GET /partner/v1/products/{id}",
    },
    Bff { package: "admin-bff", port: 8083, env_prefix: "ADMIN_BFF", routes: "GET /admin/v1/users/{id}" },
];

/// The mock services and their default ports (identity first). Must equal
/// `services_mock::Service::ALL`; a test checks.
pub(crate) const MOCKS: &[(&str, u16)] = &[
    ("identity", 7000),
    ("user", 7001),
    ("catalog", 7002),
    ("pricing", 7003),
    ("inventory", 7004),
    ("cart", 7005),
    ("recommendations", 7006),
    ("promotions", 7007),
    ("shipping", 7008),
    ("reviews", 7009),
    ("orders", 7010),
];

#[cfg(test)]
mod tests;
