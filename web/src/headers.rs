//! Security headers on the console's pages: a content security policy that allows only
//! our own scripts and styles (inline styles are allowed for meters' widths), no framing
//! (clickjacking), no MIME sniffing, and no referrer leaving the site.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// The policy of every console page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Whether a path belongs to the console (the API and its reference page have their own
/// rules).
pub(crate) fn is_console(path: &str) -> bool {
    !(path.starts_with("/v1") || path == "/healthz" || path == "/readyz" || path == "/metrics")
}

/// Middleware: adds the headers to console responses.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let console = is_console(req.path());
    let mut res = next.call(req).await?;
    if console {
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::is_console;

    #[test]
    fn the_api_keeps_its_own_headers() {
        assert!(is_console("/console/projects/x"));
        assert!(is_console("/admin"));
        assert!(is_console("/auth/login"));
        assert!(!is_console("/v1/leases"));
        assert!(!is_console("/v1/docs/"));
    }
}
