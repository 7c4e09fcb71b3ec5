//! The page's API: the commands it sends, and what the flows behind the page implement
//! ([`Actions`]). Bodies are small typed JSON objects; anything else is a 400.

use serde::Deserialize;
use serde_json::Value;

/// Largest request body read (bytes).
pub const MAX_BODY: usize = 8 * 1024;

/// Longest free-text reason kept (characters).
pub const MAX_REASON: usize = 300;

/// A command from the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `POST /api/siwe/message`: the exact EIP-4361 message to sign with this account.
    SiweMessage {
        /// The wallet's address (`0x…`).
        address: String,
        /// The chain the wallet is on (EIP-155 id), if it said.
        chain_id: Option<u64>,
    },
    /// `POST /api/siwe/signature`: the wallet's `personal_sign` signature of that message.
    SiweSignature {
        /// The address the message was made for.
        address: String,
        /// `0x` + 130 hex digits.
        signature: String,
    },
    /// `POST /api/join`: the user's yes.
    Join,
    /// `POST /api/decline`: the user's no (or the wallet's refusal), with the reason the
    /// host is told.
    Decline {
        /// Why (None: the user declined).
        reason: Option<String>,
    },
    /// `POST /api/start`: the host's go.
    Start,
    /// `POST /api/cancel`: the host calls the session off.
    Cancel {
        /// Why (None: the host cancelled).
        reason: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    address: String,
    #[serde(default)]
    chain_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureBody {
    address: String,
    signature: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// One line of at most [`MAX_REASON`] printable characters (control characters become
/// spaces): what a page may tell the host.
pub fn clean_reason(s: &str) -> String {
    let one: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_REASON).collect();
    one.trim().to_owned()
}

/// Parses the body of `POST /api/<path>` (None: no such command).
pub fn parse(path: &str, body: &[u8]) -> Option<Result<Command, Problem>> {
    fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Problem> {
        serde_json::from_slice(body).map_err(|e| Problem::new(400, "bad-request", format!("the body: {e}")))
    }
    let c = match path {
        "siwe/message" => {
            json::<MessageBody>(body).map(|b| Command::SiweMessage { address: b.address, chain_id: b.chain_id })
        }
        "siwe/signature" => {
            json::<SignatureBody>(body).map(|b| Command::SiweSignature { address: b.address, signature: b.signature })
        }
        "join" => json::<Empty>(body).map(|_| Command::Join),
        "start" => json::<Empty>(body).map(|_| Command::Start),
        "decline" => json::<ReasonBody>(body).map(|b| Command::Decline { reason: b.reason.map(|r| clean_reason(&r)) }),
        "cancel" => json::<ReasonBody>(body).map(|b| Command::Cancel { reason: b.reason.map(|r| clean_reason(&r)) }),
        _ => return None,
    };
    Some(c)
}

/// A refused command: an HTTP status, a stable code and a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status (4xx).
    pub status: u16,
    /// A stable code (`wrong-account`, `not-now`, …).
    pub code: String,
    /// What to tell the user.
    pub message: String,
}

impl Problem {
    /// A problem.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Problem {
        Problem { status, code: code.to_owned(), message: message.into() }
    }

    /// A command that does not fit the session's state now (409).
    pub fn not_now(what: &str) -> Problem {
        Problem::new(409, "not-now", format!("{what} is not possible now"))
    }
}

/// What the page's commands do: implemented by the joiner's and the host's flows.
#[async_trait::async_trait]
pub trait Actions: Send + Sync {
    /// Carries out `c`; the JSON answer or why not.
    async fn act(&self, c: Command) -> Result<Value, Problem>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_typed_and_strict() {
        let c = parse("siwe/message", br#"{"address":"0xab","chain_id":5}"#).unwrap().unwrap();
        assert_eq!(c, Command::SiweMessage { address: "0xab".into(), chain_id: Some(5) });
        assert_eq!(parse("join", b"{}").unwrap().unwrap(), Command::Join);
        assert_eq!(parse("join", br#"{"x":1}"#).unwrap().unwrap_err().status, 400);
        assert_eq!(parse("join", b"").unwrap().unwrap_err().status, 400);
        assert!(parse("nope", b"{}").is_none());
        let c = parse("decline", "{\"reason\":\"no\\nway\\u0007\"}".as_bytes()).unwrap().unwrap();
        assert_eq!(c, Command::Decline { reason: Some("no way".into()) });
        let long = format!("{{\"reason\":\"{}\"}}", "x".repeat(1000));
        let Command::Decline { reason: Some(r) } = parse("decline", long.as_bytes()).unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(r.len(), MAX_REASON);
    }
}
