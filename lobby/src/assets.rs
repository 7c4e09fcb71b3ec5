//! The page's files, embedded in the binary: plain HTML, CSS and a little JavaScript, no
//! build step, nothing loaded from elsewhere (the CSP forbids it).

/// The Content-Security-Policy of every answer: only this origin's own script, style and
/// images; API calls to this origin only; no frames, forms, plugins or base changes.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/lobby.js");
const STYLE: &str = include_str!("../assets/lobby.css");
const ICON: &str = include_str!("../assets/icon.svg");

/// The file `name` (`""` is the page): its content type and body.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "" => Some(("text/html; charset=utf-8", INDEX)),
        "lobby.js" => Some(("text/javascript; charset=utf-8", SCRIPT)),
        "lobby.css" => Some(("text/css; charset=utf-8", STYLE)),
        "icon.svg" => Some(("image/svg+xml", ICON)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for name in ["", "lobby.js", "lobby.css", "icon.svg"] {
            let (_, body) = super::get(name).unwrap();
            for bad in ["http://", "https://", "//cdn", "@import", "<iframe", "eval(", "innerHTML"] {
                let body = body.replace("http://www.w3.org/2000/svg", "");
                assert!(!body.contains(bad), "{name:?} contains {bad:?}");
            }
        }
    }
}
