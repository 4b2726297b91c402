//! What the load examples share: a checked JSON call, and one tenant set up for load
//! (organisation with a large quota, project, contract grant on H100-80GB, lead token).

use serde_json::{Value, json};

/// Sends `body` with `token`; fails loudly unless the answer is a success.
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut req = client.request(method, &url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// Creates organisation `slug` and its project `load`, with room for 300,000 GPUs and
/// 10,000,000 GPU-hours; answers (project id, lead token secret).
pub async fn tenant(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    slug: &str,
    reference: &str,
) -> (String, String) {
    let post = reqwest::Method::POST;
    let org = call(
        client,
        post.clone(),
        format!("{base}/v1/organizations"),
        admin,
        Some(json!({"slug": slug, "name": "Load", "kind": "industry"})),
    )
    .await;
    let org = org["id"].as_str().unwrap().to_owned();
    call(
        client,
        reqwest::Method::PUT,
        format!("{base}/v1/organizations/{org}/quota"),
        admin,
        Some(json!({"max_compute_slices": 7 * 300_000})),
    )
    .await;
    let project = call(
        client,
        post.clone(),
        format!("{base}/v1/organizations/{org}/projects"),
        admin,
        Some(json!({"slug": "load", "name": "Load"})),
    )
    .await;
    let project = project["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now();
    call(
        client,
        post.clone(),
        format!("{base}/v1/grants"),
        admin,
        Some(json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 10_000_000,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": reference})),
    )
    .await;
    let token = call(
        client,
        post,
        format!("{base}/v1/projects/{project}/tokens"),
        admin,
        Some(json!({"name": "load", "role": "lead"})),
    )
    .await;
    (project, token["secret"].as_str().unwrap().to_owned())
}
