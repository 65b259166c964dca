//! Opaque, tamper-evident page cursors.
//!
//! A list's next-page cursor is what the service behind it gave (an
//! offset, a key), sealed with the BFF's cache key (AES-256-GCM) for one
//! caller and one list, and base64url-encoded. A client cannot read it,
//! edit it, forge one, or use another caller's or another list's: each
//! fails to open and is `400 request.invalid`, so nothing a client makes
//! up ever reaches a service as a cursor (a service's `400` would count
//! against its health).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_cache::Cache;
use bff_error::{ApiError, ErrorCode};

/// The longest cursor accepted, in characters (before any decoding).
pub const MAX_LEN: usize = 512;

/// The OpenAPI pattern of a cursor parameter.
pub const PATTERN: &str = "^[A-Za-z0-9_-]{1,512}$";

/// Seals `inner` (the service's cursor) for `scope` (who and which list,
/// e.g. `orders:u-1`).
pub fn seal(cache: &Cache, scope: &str, inner: &str) -> Option<String> {
    cache.seal(&format!("cursor:{scope}"), inner.as_bytes()).map(|sealed| URL_SAFE_NO_PAD.encode(sealed))
}

/// Opens a cursor sealed for `scope`; anything else is `400 request.invalid`.
pub fn open(cache: &Cache, scope: &str, cursor: &str) -> Result<String, ApiError> {
    let refused = || ApiError::new(ErrorCode::RequestInvalid).with_detail("cursor is not one this API gave");
    if cursor.is_empty() || cursor.len() > MAX_LEN {
        return Err(refused());
    }
    let sealed = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused())?;
    let plain = cache.open(&format!("cursor:{scope}"), &sealed).ok_or_else(refused)?;
    String::from_utf8(plain).map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_for_its_scope_and_unedited() {
        let cache =
            Cache::new(bff_cache::CacheConfig::default(), bff_redis::SharedRedis::disabled()).expect("cache");
        let cursor = seal(&cache, "orders:u-1", "20").expect("sealed");
        assert_eq!(open(&cache, "orders:u-1", &cursor).expect("opens"), "20");
        assert!(open(&cache, "orders:u-2", &cursor).is_err(), "another caller's");
        assert!(open(&cache, "orders:u-1", "MjA").is_err(), "forged");
        let mut edited = cursor.into_bytes();
        let last = edited.len() - 2;
        edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
        assert!(open(&cache, "orders:u-1", &String::from_utf8(edited).expect("ascii")).is_err(), "edited");
    }
}
