//! English and French. Every text a page shows comes from [`texts`] by key
//! (`t.s("key")` in templates); a test checks that every key a template uses exists.
//! The texts live in `texts/*.in`, one file per area (core, console, committee,
//! operators), each a list of `(key, English, French)`.
//! The language comes from the `aion_lang` cookie, else from `Accept-Language`.

use actix_web::HttpRequest;
use actix_web::http::header;

/// Cookie that keeps the chosen language.
pub const LANG_COOKIE: &str = "aion_lang";

/// A language of the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
}

impl Lang {
    /// The BCP 47 code (`en`, `fr`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// Parses a code; `None` for languages the console does not speak.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "fr" => Some(Lang::Fr),
            _ => None,
        }
    }

    /// The language of a request: its cookie, else the first spoken one of
    /// `Accept-Language` (by quality), else English.
    pub fn of(req: &HttpRequest) -> Self {
        if let Some(lang) = req.cookie(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
            return lang;
        }
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(from_accept_language)
            .unwrap_or(Lang::En)
    }
}

fn from_accept_language(raw: &str) -> Option<Lang> {
    let mut best: Option<(f32, Lang)> = None;
    for part in raw.split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("").trim();
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        if let Some(lang) = Lang::parse(primary)
            && q > 0.0
            && best.is_none_or(|(bq, _)| q > bq)
        {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l)
}

/// Translations for one request's language, handed to every template as `t`.
#[derive(Clone, Copy, Debug)]
pub struct Tr {
    /// The language.
    pub lang: Lang,
}

impl Tr {
    /// The text of `key` in this language; the key itself (and a warning in the log)
    /// when it is missing, so a forgotten text shows up without breaking the page.
    pub fn s(&self, key: &str) -> &'static str {
        let all = texts();
        match all.binary_search_by(|(k, _, _)| k.cmp(&key)) {
            Ok(i) => match self.lang {
                Lang::En => all[i].1,
                Lang::Fr => all[i].2,
            },
            Err(_) => {
                tracing::warn!(key, "missing console text");
                "?"
            }
        }
    }

    /// The language code, for `<html lang>`.
    pub fn code(&self) -> &'static str {
        self.lang.code()
    }
}

type Text = (&'static str, &'static str, &'static str);

static AREAS: [&[Text]; 4] = [
    &include!("../texts/core.in"),
    &include!("../texts/console.in"),
    &include!("../texts/committee.in"),
    &include!("../texts/operators.in"),
];

/// Every (key, English, French), sorted by key.
pub fn texts() -> &'static [Text] {
    static ALL: std::sync::OnceLock<Vec<Text>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<Text> = AREAS.iter().flat_map(|a| a.iter().copied()).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_unique_and_translated() {
        for pair in texts().windows(2) {
            assert!(pair[0].0 != pair[1].0, "{} is defined twice", pair[0].0);
        }
        for (key, en, fr) in texts() {
            assert!(
                !en.trim().is_empty() && !fr.trim().is_empty(),
                "{key} lacks a text"
            );
        }
    }

    #[test]
    fn every_key_used_by_a_template_or_the_code_exists() {
        let mut missing = Vec::new();
        for dir in ["templates", "src"] {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            let mut stack = vec![root];
            while let Some(path) = stack.pop() {
                if path.is_dir() {
                    for entry in std::fs::read_dir(&path).unwrap() {
                        stack.push(entry.unwrap().path());
                    }
                    continue;
                }
                if path.ends_with("i18n.rs") {
                    continue; // this file only names the pattern
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split("t.s(\"").skip(1) {
                    let key = piece.split('"').next().unwrap();
                    if texts().binary_search_by(|(k, _, _)| k.cmp(&key)).is_err() {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "texts missing from texts/*.in: {missing:#?}"
        );
    }

    #[test]
    fn accept_language_picks_the_best_spoken_language() {
        assert_eq!(
            from_accept_language("fr-FR,fr;q=0.9,en;q=0.8"),
            Some(Lang::Fr)
        );
        assert_eq!(
            from_accept_language("de-DE,en;q=0.5,fr;q=0.7"),
            Some(Lang::Fr)
        );
        assert_eq!(from_accept_language("de, it"), None);
        assert_eq!(from_accept_language("fr;q=0, en;q=0.1"), Some(Lang::En));
    }
}
