//! The agent API client: the credential file, and how answers map to errors (against a
//! one-shot raw HTTP server, so no control plane is needed).

use aion_agent::Error;
use aion_agent::client::{AgentClient, Credential, CredentialStore};
use aion_agent::reconcile::Backoff;
use chrono::{Duration, Utc};
use std::time::Duration as StdDuration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn credential() -> Credential {
    Credential {
        node_id: Uuid::new_v4(),
        secret: "aionnode_secret".into(),
        expires_at: Utc::now() + Duration::days(1),
        renew_after: Utc::now() + Duration::hours(12),
    }
}

/// Serves one request with `status` and `body`, answering the request's text.
async fn one_shot(
    status: &'static str,
    body: &'static str,
) -> std::io::Result<(String, tokio::task::JoinHandle<String>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return String::new();
        };
        let mut buf = vec![0u8; 8192];
        let n = s.read(&mut buf).await.unwrap_or(0);
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(answer.as_bytes()).await;
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    Ok((url, task))
}

#[test]
fn the_credential_file_is_private_and_round_trips() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("aion-cred-{}", Uuid::new_v4()));
    let store = CredentialStore::new(&dir);
    assert!(store.load()?.is_none());
    let c = credential();
    store.save(&c)?;
    assert_eq!(store.load()?, Some(c.clone()));
    let mode = std::fs::metadata(store.path())?.permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !format!("{c:?}").contains("aionnode_secret"),
        "Debug hides it"
    );
    Ok(())
}

#[tokio::test]
async fn a_401_problem_is_an_unauthorized_error_with_its_detail() -> TestResult {
    let (url, server) = one_shot(
        "401 Unauthorized",
        r#"{"type":"https://aion.dev/problems/unauthorized","title":"Unauthorized","status":401,"detail":"unknown node credential","code":"unauthorized"}"#,
    )
    .await?;
    let client = AgentClient::new(&url, StdDuration::from_secs(5))?;
    let err = client.renew(&credential()).await.err();
    let request = server.await?;
    assert!(request.starts_with("POST /v1/agent/renew"), "{request}");
    assert!(
        request
            .to_lowercase()
            .contains("authorization: bearer aionnode_secret")
    );
    assert!(
        matches!(&err, Some(Error::Unauthorized { detail, .. }) if detail == "unknown node credential"),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_422_problem_is_a_refusal_with_type_title_detail_and_status() -> TestResult {
    let (url, server) = one_shot(
        "422 Unprocessable Entity",
        r#"{"type":"https://aion.dev/problems/validation_failed","title":"Validation failed","status":422,"detail":"instances[0].gpu_uuid: is not a GPU of this node","code":"validation_failed"}"#,
    )
    .await?;
    let client = AgentClient::new(&url, StdDuration::from_secs(5))?;
    let err = client
        .status(&credential(), &aion_api_types::StatusReport::default())
        .await
        .err();
    server.await?;
    match err {
        Some(Error::Refused {
            status,
            type_uri,
            title,
            detail,
            code,
        }) => {
            assert_eq!(status, 422);
            assert!(type_uri.ends_with("validation_failed"));
            assert_eq!(title, "Validation failed");
            assert!(detail.contains("gpu_uuid"));
            assert_eq!(code.as_deref(), Some("validation_failed"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_503_or_a_closed_port_means_unreachable() -> TestResult {
    let (url, server) = one_shot("503 Service Unavailable", "{}").await?;
    let client = AgentClient::new(&url, StdDuration::from_secs(5))?;
    let err = client
        .desired_state(&credential(), Some(3), StdDuration::ZERO)
        .await
        .err();
    let request = server.await?;
    assert!(request.contains("revision=3"), "{request}");
    assert!(err.as_ref().is_some_and(Error::is_unreachable), "{err:?}");

    let closed = AgentClient::new("http://127.0.0.1:9", StdDuration::from_secs(2))?;
    let err = closed.renew(&credential()).await.err();
    assert!(err.as_ref().is_some_and(Error::is_unreachable), "{err:?}");
    Ok(())
}

#[test]
fn backoff_doubles_with_jitter_up_to_its_cap_and_resets() {
    let min = StdDuration::from_millis(100);
    let max = StdDuration::from_secs(1);
    let mut b = Backoff::new(min, max);
    let first = b.next_delay();
    assert!(first >= min / 2 && first <= min);
    for _ in 0..10 {
        assert!(b.next_delay() <= max);
    }
    let capped = b.next_delay();
    assert!(capped >= max / 2, "{capped:?}");
    b.reset();
    assert!(b.next_delay() <= min);
}
