//! A browser-like HTTP client for console tests: a cookie jar, no automatic redirects
//! (tests look at each one), form posts carrying the page's CSRF token, the development
//! sign-in, and a real OpenID login through the test provider's login page.

use reqwest::StatusCode;

/// A fetched page or redirect.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The value of the first hidden/visible input named `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(html_unescape(&self.body[start..end]))
    }

    /// The CSRF token of the page's forms.
    #[track_caller]
    pub fn csrf(&self) -> String {
        self.field("csrf")
            .unwrap_or_else(|| panic!("no csrf field on the page: {}", self.body))
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; page: {}",
            self.body
        );
        self
    }

    /// Asserts a redirect (303) and returns its target.
    #[track_caller]
    pub fn redirect(&self) -> String {
        assert_eq!(
            self.status,
            StatusCode::SEE_OTHER,
            "expected a redirect: {}",
            self.body
        );
        self.location.clone().unwrap()
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// One browser: its own cookies.
pub struct WebClient {
    pub base: String,
    pub http: reqwest::Client,
}

impl WebClient {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn page(res: reqwest::Response) -> Page {
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: res.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    /// Follows redirects from `path` until a page that is not one; returns it and the
    /// last URL.
    pub async fn follow(&self, path: &str) -> (Page, String) {
        let mut url = self.url(path);
        for _ in 0..15 {
            let page = self.get(&url).await;
            match (&page.status, &page.location) {
                (s, Some(next)) if s.is_redirection() => {
                    url = if next.starts_with("http") {
                        next.clone()
                    } else {
                        let origin = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                        format!("{origin}{next}")
                    };
                }
                _ => return (page, url),
            }
        }
        panic!("too many redirects from {path}");
    }

    /// Posts a form as is (no CSRF added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Self::page(
            self.http
                .post(self.url(path))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts a form with the CSRF token of the page at `from`.
    pub async fn post(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.expect(200).csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Signs in as a demo user through `aion dev`'s development sign-in.
    pub async fn dev_sign_in(&self, user: &str) {
        let login = self.get("/auth/login?return_to=/console").await.expect(200);
        let pre = login.field("pre").expect("the development sign-in form");
        let done = self
            .post_raw(
                "/auth/dev",
                &[("pre", &pre), ("user", user), ("return_to", "/console")],
            )
            .await;
        assert_eq!(done.redirect(), "/console", "{}", done.body);
    }

    /// Goes through the OpenID provider `provider`'s own login page as `login` and
    /// returns the console callback URL the provider sends the browser back to (not
    /// visited yet).
    pub async fn oidc_callback_url(&self, provider: &str, login: &str, return_to: &str) -> String {
        let start = self
            .get(&format!("/auth/login/{provider}?return_to={return_to}"))
            .await;
        let (form, form_url) = self.follow(&start.redirect()).await;
        assert!(
            form.body.contains("name=\"login\""),
            "provider login page: {}",
            form.body
        );
        let action = {
            let i = form.body.find("action=\"").unwrap() + 8;
            let j = form.body[i..].find('"').unwrap() + i;
            html_unescape(&form.body[i..j])
        };
        let origin = form_url
            .splitn(4, '/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/");
        let action = if action.starts_with("http") {
            action
        } else {
            format!("{origin}{action}")
        };
        let mut next = self
            .post_raw(
                &action,
                &[("prompt", "login"), ("login", login), ("password", "any")],
            )
            .await
            .redirect();
        let ours = format!("{}/", self.base);
        loop {
            let url = if next.starts_with("http") {
                next.clone()
            } else {
                format!("{origin}{next}")
            };
            if url.starts_with(&ours) {
                return url;
            }
            next = self.get(&url).await.redirect();
        }
    }

    /// Signs in through the OpenID provider and returns where the console sent the
    /// browser afterwards.
    pub async fn oidc_sign_in(&self, provider: &str, login: &str, return_to: &str) -> String {
        let callback = self.oidc_callback_url(provider, login, return_to).await;
        self.get(&callback).await.redirect()
    }
}
