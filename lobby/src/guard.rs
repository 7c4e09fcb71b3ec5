//! Who may talk to the lobby: the checks every request passes before anything else is
//! looked at. Sans-IO: the request's facts in, a verdict out (the server only maps it to
//! a response), so every rule is unit-tested and fuzzed without a socket.
//!
//! 1. `Host` must be this listener (`127.0.0.1:PORT` or `localhost:PORT`): a DNS-rebinding
//!    page (another name resolving to 127.0.0.1) is refused.
//! 2. `Origin`, when present, must be this page's own origin; `Sec-Fetch-Site`, when
//!    present, `same-origin` or `none`: another site's page (another port included) is
//!    refused, and so is a preflight, so no cross-origin read or write ever happens.
//! 3. The secret token: as the first path segment after `/t/` for the page's own files
//!    (the URL the user opens), as the `x-didmpc-token` header for the API (the page's
//!    script sends it; a cross-site form cannot), and a one-time launch code under
//!    `/launch/` (checked and spent by the server).

/// The header carrying the token on API calls.
pub const TOKEN_HEADER: &str = "x-didmpc-token";

/// Longest header value or path the guard looks at (longer ones are refused).
pub const MAX_FIELD: usize = 2048;

/// The facts of one request the guard decides on (raw header bytes: not trusted to be
/// text).
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The path (without the query).
    pub path: &'a str,
    /// The `Host` header.
    pub host: Option<&'a [u8]>,
    /// The `Origin` header.
    pub origin: Option<&'a [u8]>,
    /// The `Sec-Fetch-Site` header.
    pub fetch_site: Option<&'a [u8]>,
    /// The [`TOKEN_HEADER`] header.
    pub token: Option<&'a [u8]>,
}

/// What an admitted request may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// One of the page's files (`""` is the page itself), by name.
    Asset(&'a str),
    /// An API call: the path after `/api/`.
    Api(&'a str),
    /// The one-time launch link, with the code it carries (the server checks and spends it).
    Launch(&'a str),
}

/// Why a request was refused (always answered 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// `Host` is missing or names another host or port (DNS rebinding).
    Host,
    /// `Origin` is another origin (another site or port, or `null`).
    Origin,
    /// `Sec-Fetch-Site` says another site sent it.
    CrossSite,
    /// The token is missing or wrong.
    Token,
}

impl Denied {
    /// A short explanation (never containing anything the request sent).
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Host => "this page is served only as 127.0.0.1 or localhost on its own port",
            Denied::Origin => "requests from another origin are refused",
            Denied::CrossSite => "requests sent by another site are refused",
            Denied::Token => "the lobby's token is missing or wrong: open the URL didmpc printed",
        }
    }
}

/// The rules of one lobby: its port and its token.
pub struct Guard {
    port: u16,
    token: String,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("port", &self.port).field("token", &"<redacted>").finish()
    }
}

impl Guard {
    /// The rules for a listener on 127.0.0.1:`port` with this token.
    pub fn new(port: u16, token: String) -> Guard {
        Guard { port, token }
    }

    /// Decides on one request.
    pub fn check<'a>(&self, f: &Facts<'a>) -> Result<Access<'a>, Denied> {
        if !self.own_host(f.host) {
            return Err(Denied::Host);
        }
        if let Some(origin) = f.origin {
            if !self.own_origin(origin) {
                return Err(Denied::Origin);
            }
        }
        if let Some(site) = f.fetch_site {
            if !matches!(site, b"same-origin" | b"none") {
                return Err(Denied::CrossSite);
            }
        }
        if f.path.len() > MAX_FIELD {
            return Err(Denied::Token);
        }
        if let Some(rest) = f.path.strip_prefix("/t/") {
            let (token, name) = rest.split_once('/').ok_or(Denied::Token)?;
            return if same(token.as_bytes(), self.token.as_bytes()) {
                Ok(Access::Asset(name))
            } else {
                Err(Denied::Token)
            };
        }
        if let Some(rest) = f.path.strip_prefix("/api/") {
            let token = f.token.ok_or(Denied::Token)?;
            return if same(token, self.token.as_bytes()) { Ok(Access::Api(rest)) } else { Err(Denied::Token) };
        }
        match f.path.strip_prefix("/launch/") {
            Some(code) if !code.is_empty() => Ok(Access::Launch(code)),
            _ => Err(Denied::Token),
        }
    }

    fn own_host(&self, host: Option<&[u8]>) -> bool {
        let Some(host) = host.filter(|h| h.len() <= MAX_FIELD) else { return false };
        let Ok(host) = std::str::from_utf8(host) else { return false };
        let host = host.trim().to_ascii_lowercase();
        let port = self.port.to_string();
        matches!(host.rsplit_once(':'), Some((name, p)) if p == port && (name == "127.0.0.1" || name == "localhost"))
    }

    fn own_origin(&self, origin: &[u8]) -> bool {
        let Ok(origin) = std::str::from_utf8(origin) else { return false };
        let origin = origin.trim().to_ascii_lowercase();
        let Some(host) = origin.strip_prefix("http://") else { return false };
        self.own_host(Some(host.as_bytes()))
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh secret: 32 random bytes, base64url without padding (43 characters).
pub fn secret() -> crate::Result<String> {
    use base64::Engine;
    use rand_core::RngCore;
    let mut b = [0u8; 32];
    rand_core::OsRng.try_fill_bytes(&mut b).map_err(|e| crate::Error::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "tok3n-tok3n-tok3n-tok3n-tok3n-tok3n-tok3n-x";

    fn guard() -> Guard {
        Guard::new(4242, TOKEN.into())
    }

    fn facts(path: &str) -> Facts<'_> {
        Facts { path, host: Some(b"127.0.0.1:4242"), ..Facts::default() }
    }

    #[test]
    fn the_page_and_its_files_need_the_token_in_the_path() {
        let g = guard();
        let page = format!("/t/{TOKEN}/");
        assert_eq!(g.check(&facts(&page)), Ok(Access::Asset("")));
        let js = format!("/t/{TOKEN}/lobby.js");
        assert_eq!(g.check(&facts(&js)), Ok(Access::Asset("lobby.js")));
        assert_eq!(g.check(&facts("/")), Err(Denied::Token));
        assert_eq!(g.check(&facts("/t/")), Err(Denied::Token));
        assert_eq!(g.check(&facts(&format!("/t/{TOKEN}"))), Err(Denied::Token), "no name: no file");
        let wrong = format!("/t/{}y/", &TOKEN[..TOKEN.len() - 1]);
        assert_eq!(g.check(&facts(&wrong)), Err(Denied::Token));
        assert_eq!(g.check(&facts("/favicon.ico")), Err(Denied::Token));
    }

    #[test]
    fn the_api_needs_the_token_header_not_the_path() {
        let g = guard();
        assert_eq!(g.check(&facts("/api/state")), Err(Denied::Token));
        let f = Facts { token: Some(TOKEN.as_bytes()), ..facts("/api/state") };
        assert_eq!(g.check(&f), Ok(Access::Api("state")));
        let f = Facts { token: Some(b"guess"), ..facts("/api/state") };
        assert_eq!(g.check(&f), Err(Denied::Token));
        let in_path = format!("/t/{TOKEN}/../../api/state");
        assert_eq!(g.check(&facts(&in_path)), Ok(Access::Asset("../../api/state")), "only a name: the server 404s it");
    }

    #[test]
    fn another_host_origin_or_site_is_refused_even_with_the_token() {
        let g = guard();
        let page = format!("/t/{TOKEN}/");
        let with = |host: &'static [u8], origin: Option<&'static [u8]>, site: Option<&'static [u8]>| Facts {
            path: "",
            host: Some(host),
            origin,
            fetch_site: site,
            token: Some(TOKEN.as_bytes()),
        };
        let check = |f: Facts<'_>, path: &str| g.check(&Facts { path, ..f }).map(|_| ());
        // DNS rebinding: another name for 127.0.0.1, or another port.
        assert_eq!(check(with(b"evil.example:4242", None, None), &page), Err(Denied::Host));
        assert_eq!(check(with(b"127.0.0.1:4243", None, None), &page), Err(Denied::Host));
        assert_eq!(check(with(b"127.0.0.1", None, None), &page), Err(Denied::Host));
        assert_eq!(check(with(b"[::1]:4242", None, None), &page), Err(Denied::Host));
        assert_eq!(check(Facts { host: None, ..with(b"", None, None) }, &page), Err(Denied::Host));
        assert_eq!(check(with(b"LOCALHOST:4242", None, None), &page), Ok(()));
        // Another origin, the opaque origin, another port on loopback.
        for o in [&b"http://evil.example"[..], b"null", b"http://127.0.0.1:4243", b"https://127.0.0.1:4242"] {
            assert_eq!(check(with(b"127.0.0.1:4242", Some(o), None), "/api/state"), Err(Denied::Origin), "{o:?}");
        }
        assert_eq!(check(with(b"127.0.0.1:4242", Some(b"http://127.0.0.1:4242"), None), "/api/state"), Ok(()));
        assert_eq!(check(with(b"127.0.0.1:4242", Some(b"http://localhost:4242"), None), "/api/state"), Ok(()));
        for s in [&b"cross-site"[..], b"same-site", b"weird"] {
            assert_eq!(check(with(b"127.0.0.1:4242", None, Some(s)), &page), Err(Denied::CrossSite));
        }
        for s in [&b"same-origin"[..], b"none"] {
            assert_eq!(check(with(b"127.0.0.1:4242", None, Some(s)), &page), Ok(()));
        }
    }

    #[test]
    fn the_launch_link_passes_to_the_server_with_its_code() {
        let g = guard();
        assert_eq!(g.check(&facts("/launch/abc")), Ok(Access::Launch("abc")));
        assert_eq!(g.check(&facts("/launch/")), Err(Denied::Token));
        let f = Facts { host: Some(b"evil:4242"), ..facts("/launch/abc") };
        assert_eq!(g.check(&f), Err(Denied::Host));
    }

    #[test]
    fn secrets_are_fresh_and_compared_whole() {
        let (a, b) = (secret().unwrap(), secret().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(same(a.as_bytes(), a.as_bytes()));
        assert!(!same(a.as_bytes(), b.as_bytes()));
        assert!(!same(a.as_bytes(), &a.as_bytes()[..42]));
    }
}
