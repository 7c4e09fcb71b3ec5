//! The lobby page's request checks on arbitrary bytes: `guard::Guard::check` (path and the
//! Host, Origin, Sec-Fetch-Site and token headers as raw bytes) and `api::parse` (a
//! command's JSON body) never panic; an admitted request carries the token (in the path
//! for files, as the header for the API) and names the listener's own host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lobby::guard::{Access, Facts, Guard};

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fuzz_target!(|data: &[u8]| {
    // Five fields separated by 0xff bytes: path, Host, Origin, Sec-Fetch-Site, token.
    let mut parts = data.split(|b| *b == 0xff);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    fn field(p: Option<&[u8]>) -> Option<&[u8]> {
        p.filter(|f| !f.is_empty())
    }
    let (host, origin, site, token) = (field(parts.next()), field(parts.next()), field(parts.next()), field(parts.next()));
    let guard = Guard::new(4242, TOKEN.into());
    let facts = Facts { path: &path, host, origin, fetch_site: site, token };
    let verdict = guard.check(&facts);
    if verdict.is_ok() {
        let h = String::from_utf8_lossy(host.unwrap_or_default()).trim().to_ascii_lowercase();
        assert!(h == "127.0.0.1:4242" || h == "localhost:4242", "{h}");
    }
    match verdict {
        Ok(Access::Asset(name)) => {
            assert!(path.starts_with(&format!("/t/{TOKEN}/")) && path.ends_with(name));
        }
        Ok(Access::Api(rest)) => {
            assert_eq!(token, Some(TOKEN.as_bytes()));
            assert!(path.starts_with("/api/") && path.ends_with(rest));
        }
        Ok(Access::Launch(code)) => assert!(!code.is_empty() && path.starts_with("/launch/")),
        Err(_) => {}
    }
    // The API bodies, for every command name.
    for cmd in ["siwe/message", "siwe/signature", "join", "decline", "start", "cancel"] {
        if let Some(Ok(lobby::api::Command::Decline { reason: Some(r) })) = lobby::api::parse(cmd, data) {
            assert!(r.chars().count() <= lobby::api::MAX_REASON && !r.chars().any(char::is_control));
        }
    }
});
